package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
)

// [[publish]] to = "docker:NAME": a container's service, at the addresses
// Docker gives the container, which change when it is made anew. Docker is
// asked through its Engine API on its socket (DOCKER_HOST, as the docker
// CLI reads it, else /var/run/docker.sock) every few seconds; a change
// converges the routes and the firewall again.

// containerAddrs is what Docker reports of one container: an address of
// each family, either invalid, or why there is none.
type containerAddrs struct {
	V4, V6 netip.Addr
	Err    string
}

// publishWith is ps with each container's target filled in from found; a
// container without an address of a family publishes nothing of it.
func publishWith(ps []config.Publish, found map[string]containerAddrs) []config.Publish {
	var out []config.Publish
	for _, p := range ps {
		if p.Container == "" {
			out = append(out, p)
			continue
		}
		c := found[p.Container]
		if c.V4.IsValid() {
			p.To = netip.AddrPortFrom(c.V4, p.ContainerPort)
		}
		if c.V6.IsValid() {
			p.To6 = netip.AddrPortFrom(c.V6, p.ContainerPort)
		}
		if p.To.IsValid() || p.To6.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

func containerNames(cfg *config.Config) []string {
	var out []string
	for _, p := range cfg.Publish {
		if p.Container != "" && !slices.Contains(out, p.Container) {
			out = append(out, p.Container)
		}
	}
	return out
}

// dockerAPI asks the Docker daemon about containers.
type dockerAPI struct{ c *http.Client }

// newDockerAPI talks to the daemon at DOCKER_HOST (unix:// only: a TCP
// daemon is another machine's, whose containers this host cannot route
// to) or at /var/run/docker.sock.
func newDockerAPI() (*dockerAPI, error) {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		u, err := url.Parse(h)
		if err != nil || u.Scheme != "unix" {
			return nil, fmt.Errorf("DOCKER_HOST %q: want unix:///path/to/docker.sock", h)
		}
		sock = u.Path
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &dockerAPI{c: &http.Client{Transport: tr, Timeout: 5 * time.Second}}, nil
}

// inspect returns a container's addresses: of its networks in name order,
// the first address of each family. A stopped container has none.
func (d *dockerAPI) inspect(ctx context.Context, name string) containerAddrs {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/"+url.PathEscape(name)+"/json", nil)
	if err != nil {
		return containerAddrs{Err: err.Error()}
	}
	resp, err := d.c.Do(req)
	if err != nil {
		return containerAddrs{Err: fmt.Sprintf("ask Docker: %v", err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return containerAddrs{Err: fmt.Sprintf("Docker: %s: %s", resp.Status, strings.TrimSpace(string(body)))}
	}
	return parseInspect(body)
}

// parseInspect reads the addresses out of Docker's answer to GET
// /containers/NAME/json.
func parseInspect(body []byte) containerAddrs {
	var c struct {
		State struct {
			Running bool
		}
		NetworkSettings struct {
			Networks map[string]struct {
				IPAddress         string
				GlobalIPv6Address string
			}
		}
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return containerAddrs{Err: fmt.Sprintf("Docker's answer: %v", err)}
	}
	if !c.State.Running {
		return containerAddrs{Err: "not running"}
	}
	var out containerAddrs
	for _, name := range slices.Sorted(maps.Keys(c.NetworkSettings.Networks)) {
		n := c.NetworkSettings.Networks[name]
		if a, err := netip.ParseAddr(n.IPAddress); err == nil && a.Is4() && !out.V4.IsValid() {
			out.V4 = a
		}
		if a, err := netip.ParseAddr(n.GlobalIPv6Address); err == nil && a.Is6() && !out.V6.IsValid() {
			out.V6 = a
		}
	}
	if !out.V4.IsValid() && !out.V6.IsValid() {
		out.Err = "no address (host networking? publish \"host:PORT\" instead)"
	}
	return out
}

// containersComp follows the containers [[publish]] names and hands the
// publish list with their addresses to the routing plan and the firewall.
type containersComp struct {
	cfg      *config.Config
	api      *dockerAPI
	apiErr   error // DOCKER_HOST is not one routerd can use
	onChange []func([]config.Publish) error
	log      *slog.Logger
	run      lifecycle.Group

	mu    sync.Mutex
	found map[string]containerAddrs
}

// newContainersComp asks Docker about the containers once, at once (a
// Docker that does not answer costs its timeout); publish has the answer.
func newContainersComp(cfg *config.Config, log *slog.Logger) *containersComp {
	c := &containersComp{cfg: cfg, log: log}
	c.api, c.apiErr = newDockerAPI()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.look(ctx)
	return c
}

// publish is cfg.Publish with the containers' addresses as last found.
func (c *containersComp) publish() []config.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return publishWith(c.cfg.Publish, c.found)
}

func (c *containersComp) Name() string { return "containers" }

func (c *containersComp) Start(ctx context.Context) error {
	if c.apiErr != nil {
		return c.apiErr
	}
	c.run.Start(ctx)
	c.run.Every(3*time.Second, c.look)
	return nil
}

func (c *containersComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

// look asks Docker about every container and converges again on a change.
func (c *containersComp) look(ctx context.Context) {
	found := map[string]containerAddrs{}
	for _, name := range containerNames(c.cfg) {
		if c.apiErr != nil {
			found[name] = containerAddrs{Err: c.apiErr.Error()}
			continue
		}
		found[name] = c.api.inspect(ctx, name)
	}
	c.mu.Lock()
	same := maps.Equal(found, c.found)
	old := c.found
	c.found = found
	c.mu.Unlock()
	if same {
		return
	}
	for name, a := range found {
		if o, ok := old[name]; !ok || o != a {
			c.log.Info("a published container's addresses", "container", name, "ipv4", a.V4, "ipv6", a.V6, "err", a.Err)
		}
	}
	pubs := publishWith(c.cfg.Publish, found)
	for _, f := range c.onChange {
		if err := f(pubs); err != nil {
			c.log.Error("applying a published container's addresses", "err", err)
		}
	}
}

// OnChange registers f, called with the publications whenever a
// container's addresses change. Before Start.
func (c *containersComp) OnChange(f func([]config.Publish) error) { c.onChange = append(c.onChange, f) }

func (c *containersComp) fillStatus(st *status.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(c.found)) {
		a := c.found[name]
		sc := status.Container{Name: name, Error: a.Err}
		for _, x := range []netip.Addr{a.V4, a.V6} {
			if x.IsValid() {
				sc.Addresses = append(sc.Addresses, x.String())
			}
		}
		st.Containers = append(st.Containers, sc)
	}
}
