// Command routerctl asks a running routerd what it is doing. See the README.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

const usage = `usage: routerctl [--socket PATH] COMMAND

commands:
  status [--json]              the whole picture
  leases [--json]              DHCP leases
  blocklist refresh [NAME] [--json]
                               refresh one blocklist, or all, and show them
  vpn pubkey                   the WireGuard public key to give the VPN provider
  reload                       re-read the config file (like SIGHUP)
  poweroff | reboot            stop the appliance cleanly and power off or reboot (on the image)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("routerctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	socket := fs.String("socket", control.DefaultSocket, "routerd's control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := control.NewClient(*socket)
	cmd, rest := fs.Arg(0), fs.Args()
	if len(rest) > 0 {
		rest = rest[1:]
	}
	var err error
	switch cmd {
	case "status":
		asJSON, ok := jsonFlag(rest)
		if !ok {
			break
		}
		err = showStatus(ctx, c, asJSON, stdout)
		return exit(err, stderr)
	case "leases":
		asJSON, ok := jsonFlag(rest)
		if !ok {
			break
		}
		err = leases(ctx, c, asJSON, stdout)
		return exit(err, stderr)
	case "blocklist":
		if len(rest) < 1 || rest[0] != "refresh" {
			break
		}
		var args []string
		asJSON := false
		for _, a := range rest[1:] {
			if a == "--json" {
				asJSON = true
			} else {
				args = append(args, a)
			}
		}
		if len(args) > 1 {
			break
		}
		name := ""
		if len(args) == 1 {
			name = args[0]
		}
		return exit(blocklistRefresh(ctx, c, name, asJSON, stdout), stderr)
	case "vpn":
		if len(rest) != 1 || rest[0] != "pubkey" {
			break
		}
		var out struct {
			PublicKey string `json:"public_key"`
		}
		if err := c.Do(ctx, "GET", "/v1/vpn/pubkey", &out, nil); err != nil {
			return exit(err, stderr)
		}
		fmt.Fprintln(stdout, out.PublicKey)
		return 0
	case "poweroff", "reboot":
		if len(rest) != 0 {
			break
		}
		return exit(c.Do(ctx, "POST", "/v1/"+cmd, nil, nil), stderr)
	case "reload":
		if len(rest) != 0 {
			break
		}
		return exit(c.Do(ctx, "POST", "/v1/reload", nil, nil), stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func jsonFlag(args []string) (asJSON, ok bool) {
	switch {
	case len(args) == 0:
		return false, true
	case len(args) == 1 && (args[0] == "--json" || args[0] == "-json"):
		return true, true
	}
	return false, false
}

func exit(err error, stderr io.Writer) int {
	if err != nil {
		fmt.Fprintf(stderr, "routerctl: %v\n", err)
		return 1
	}
	return 0
}

func showStatus(ctx context.Context, c *control.Client, asJSON bool, w io.Writer) error {
	var raw []byte
	var st status.Status
	if err := c.Do(ctx, "GET", "/v1/status", &st, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(raw)
		return err
	}
	return st.WriteText(w)
}

func leases(ctx context.Context, c *control.Client, asJSON bool, w io.Writer) error {
	var raw []byte
	var ls status.Leases
	if err := c.Do(ctx, "GET", "/v1/leases", &ls, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(raw)
		return err
	}
	return ls.WriteText(w)
}

// blocklistRefresh refreshes and waits, then shows the lists as they are
// afterwards (a refused download shows as the kept copy and the reason).
func blocklistRefresh(ctx context.Context, c *control.Client, name string, asJSON bool, w io.Writer) error {
	path := "/v1/blocklist/refresh"
	if name != "" {
		path += "?name=" + url.QueryEscape(name)
	}
	var raw []byte
	var bs status.Blocklists
	if err := c.Do(ctx, "POST", path, &bs, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(raw)
		return err
	}
	return bs.WriteText(w)
}
