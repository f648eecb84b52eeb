// Package ctl is routerctl's commands: what `routerctl CMD` and `ssh
// ROUTER CMD` both run, with the same output and exit codes, against
// routerd's control API. It links only the control client and the status
// types, so routerctl stays a thin client.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/skip2/go-qrcode"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// Usage is the list of commands, for a command line that named none.
const Usage = `usage: routerctl [--socket PATH] COMMAND
       ssh ROUTER COMMAND

commands:
  status [--json]              the whole picture
  leases [--json]              DHCP leases
  blocklist refresh [NAME] [--json]
                               refresh one blocklist, or all, and show them
  vpn pubkey                   the WireGuard public key to give the VPN provider
  reload                       re-read the config file (like SIGHUP)
  logs [-f] [--component C] [--since D] [--previous]
                               the last log lines (about 2 MiB kept), -f to follow;
                               --previous: the previous boot's (on the image)
  clients [-f] [--json]        who is using the line: each LAN host's rates now and its totals since
                               midnight, both paths; -f to refresh every 2 s
  dns log [-f] [--client ADDR] [--json]
                               the questions asked (with dns.query_log set), -f to follow
  dns top [-n N] [--json]      each client's questions and blocked answers, the names blocked most
  remote add NAME [--full]     a device that reaches home over WireGuard: prints its config and a QR code
                               (--full: all its traffic comes home); the peer goes into the config (config apply)
  remote list [--json]         the devices, their last handshake and traffic
  remote delete NAME           remove a device
  portmap list [--json]        ports LAN devices mapped (NAT-PMP, PCP)
  portmap delete PROTO/PORT    remove one (tcp/3074)
  ban list                     addresses banned for failed SSH logins or WAN port scans
  ban delete ADDR              lift a ban
  config show                  the running config file
  config apply [--confirm D] < FILE
                               check FILE (nothing changes if it has an error), make it the
                               config (the old one is kept as .prev) and reload; with
                               --confirm, roll back by itself unless confirmed within D
  config confirm               keep the config applied with --confirm
  poweroff | reboot            stop the appliance cleanly and power off or reboot (on the image)
  update [FILE] [--sha256 HEX] [--signature B64] [--reboot-at HH:MM|now|never] [--allow-downgrade]
                               install routerd.efi (FILE, or standard input: ssh ROUTER update < routerd.efi)
                               into the boot slot not running, then reboot into it on probation (on the image);
                               a build older than the committed one only with --allow-downgrade, on the console
`

// RunRemote runs a command that came over SSH: as Run, but confined to the
// control API, "routerctl commands only". The router's files are not the
// caller's: update reads the image from standard input only (a FILE
// argument would open a file on the router and report its size and hash);
// and what the console alone may do is refused (--allow-downgrade).
func RunRemote(ctx context.Context, c *control.Client, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := remoteAllowed(args); err != nil {
		fmt.Fprintln(stderr, "routerctl:", err)
		return 1
	}
	return Run(ctx, c, args, stdin, stdout, stderr)
}

func remoteAllowed(args []string) error {
	if len(args) == 0 || args[0] != "update" {
		return nil
	}
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--allow-downgrade":
			return errors.New("update --allow-downgrade is for the console, not SSH")
		case a == "--sha256" || a == "--signature" || a == "--reboot-at":
			i++
		case !strings.HasPrefix(a, "-"):
			return fmt.Errorf("over SSH, update reads the image from standard input (ssh ROUTER update < routerd.efi), not from the router's file %q", a)
		}
	}
	return nil
}

// Run runs one command (args without the program name) against c and
// returns its exit code: 0 ok, 1 error (the reason on stderr), 2 usage.
func Run(ctx context.Context, c *control.Client, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, rest := "", []string(nil)
	if len(args) > 0 {
		cmd, rest = args[0], args[1:]
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
		if err := c.Do(ctx, control.VPNPubkey.Method, control.VPNPubkey.URL(nil), &out, nil); err != nil {
			return exit(err, stderr)
		}
		fmt.Fprintln(stdout, out.PublicKey)
		return 0
	case "poweroff", "reboot":
		if len(rest) != 0 {
			break
		}
		e := control.Poweroff
		if cmd == "reboot" {
			e = control.Reboot
		}
		return exit(c.Do(ctx, e.Method, e.URL(nil), nil, nil), stderr)
	case "logs":
		q, ok := logsQuery(rest)
		if !ok {
			break
		}
		return exit(c.Stream(ctx, control.Logs.URL(q), stdout), stderr)
	case "portmap":
		switch {
		case len(rest) >= 1 && rest[0] == "list":
			asJSON, ok := jsonFlag(rest[1:])
			if !ok {
				break
			}
			var raw []byte
			var st status.Status
			if err := c.Do(ctx, control.Status.Method, control.Status.URL(nil), &st, &raw); err != nil {
				return exit(err, stderr)
			}
			if st.PortMap == nil {
				return exit(errors.New("no [portmap] in the config"), stderr)
			}
			if asJSON {
				b, _ := json.MarshalIndent(st.PortMap, "", "  ")
				fmt.Fprintf(stdout, "%s\n", b)
				return 0
			}
			return exit(st.PortMap.WriteText(stdout), stderr)
		case len(rest) == 2 && rest[0] == "delete" && strings.Contains(rest[1], "/"):
			proto, port, _ := strings.Cut(rest[1], "/")
			return exit(c.Do(ctx, control.PortMapDelete.Method, control.PortMapDelete.URL(nil, proto, port), nil, nil), stderr)
		}
	case "remote":
		if code, ok := remoteCmd(ctx, c, rest, stdout, stderr); ok {
			return code
		}
	case "clients":
		if code, ok := clientsCmd(ctx, c, rest, stdout, stderr); ok {
			return code
		}
	case "dns":
		if code, ok := dnsCmd(ctx, c, rest, stdout, stderr); ok {
			return code
		}
	case "ban":
		switch {
		case len(rest) == 1 && rest[0] == "list":
			var bs status.Bans
			if err := c.Do(ctx, control.Bans.Method, control.Bans.URL(nil), &bs, nil); err != nil {
				return exit(err, stderr)
			}
			return exit(bs.WriteText(stdout), stderr)
		case len(rest) == 2 && rest[0] == "delete":
			if err := c.Do(ctx, control.BanDelete.Method, control.BanDelete.URL(nil, rest[1]), nil, nil); err != nil {
				return exit(err, stderr)
			}
			fmt.Fprintf(stdout, "%s is no longer banned\n", rest[1])
			return 0
		}
	case "config":
		if code, ok := configCmd(ctx, c, rest, stdin, stdout, stderr); ok {
			return code
		}
	case "update":
		if code, ok := updateCmd(ctx, c, rest, stdin, stdout, stderr); ok {
			return code
		}
	case "reload":
		if len(rest) != 0 {
			break
		}
		return exit(c.Do(ctx, control.Reload.Method, control.Reload.URL(nil), nil, nil), stderr)
	}
	fmt.Fprint(stderr, Usage)
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
	if err := c.Do(ctx, control.Status.Method, control.Status.URL(nil), &st, &raw); err != nil {
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
	if err := c.Do(ctx, control.Leases.Method, control.Leases.URL(nil), &ls, &raw); err != nil {
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
	var q url.Values
	if name != "" {
		q = url.Values{"name": {name}}
	}
	path := control.BlocklistRefresh.URL(q)
	var raw []byte
	var bs status.Blocklists
	if err := c.Do(ctx, control.BlocklistRefresh.Method, path, &bs, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(raw)
		return err
	}
	return bs.WriteText(w)
}

// configCmd runs config show | apply [--confirm D] | confirm; ok is false
// for a usage error.
func configCmd(ctx context.Context, c *control.Client, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, bool) {
	switch {
	case len(args) == 1 && args[0] == "show":
		var raw []byte
		if err := c.Do(ctx, control.Config.Method, control.Config.URL(nil), nil, &raw); err != nil {
			return exit(err, stderr), true
		}
		if _, err := stdout.Write(raw); err != nil {
			return exit(err, stderr), true
		}
		return 0, true
	case len(args) == 1 && args[0] == "confirm":
		if err := c.Do(ctx, control.ConfigConfirm.Method, control.ConfigConfirm.URL(nil), nil, nil); err != nil {
			return exit(err, stderr), true
		}
		fmt.Fprintln(stdout, "confirmed: the config stays")
		return 0, true
	case len(args) >= 1 && args[0] == "apply":
		path := control.ConfigApply.URL(nil)
		switch {
		case len(args) == 3 && args[1] == "--confirm":
			path = control.ConfigApply.URL(url.Values{"confirm": {args[2]}})
		case len(args) != 1:
			return 0, false
		}
		if stdin == nil {
			stdin = strings.NewReader("")
		}
		var res struct {
			Hash      string    `json:"config_hash"`
			Unchanged bool      `json:"unchanged"`
			ConfirmBy time.Time `json:"confirm_by"`
		}
		if err := c.DoBody(ctx, control.ConfigApply.Method, path, stdin, &res, nil); err != nil {
			return exit(err, stderr), true
		}
		switch {
		case res.Unchanged:
			fmt.Fprintf(stdout, "unchanged (sha256 %.12s): nothing to do\n", res.Hash)
		case !res.ConfirmBy.IsZero():
			fmt.Fprintf(stdout, "applied (sha256 %.12s); reloading.\nRun `config confirm` by %s or it rolls back by itself.\n",
				res.Hash, res.ConfirmBy.Format(time.TimeOnly))
		default:
			fmt.Fprintf(stdout, "applied (sha256 %.12s); reloading. The previous config is kept as routerd.toml.prev.\n", res.Hash)
		}
		return 0, true
	}
	return 0, false
}

// logsQuery turns logs' flags into the API's query.
func logsQuery(args []string) (url.Values, bool) {
	q := url.Values{}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-f", "--follow":
			q.Set("follow", "1")
		case "--previous":
			q.Set("previous", "1")
		case "--component", "--since":
			if i+1 == len(args) {
				return nil, false
			}
			i++
			q.Set(strings.TrimPrefix(a, "--"), args[i])
		default:
			return nil, false
		}
	}
	return q, true
}

// updateCmd uploads an image: the file named, or standard input.
func updateCmd(ctx context.Context, c *control.Client, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, bool) {
	q := url.Values{}
	file := ""
	for len(args) > 0 {
		switch a := args[0]; {
		case (a == "--sha256" || a == "--signature" || a == "--reboot-at") && len(args) > 1:
			q.Set(strings.ReplaceAll(strings.TrimPrefix(a, "--"), "-", "_"), args[1])
			args = args[2:]
		case a == "--allow-downgrade":
			q.Set("allow_downgrade", "1")
			args = args[1:]
		case !strings.HasPrefix(a, "-") && file == "":
			file, args = a, args[1:]
		default:
			return 0, false
		}
	}
	body := stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return exit(err, stderr), true
		}
		defer f.Close()
		body = f
	}
	var ans status.UpdateAnswer
	// Uploading and writing a slot can take minutes on a slow stick.
	err := c.WithTimeout(10*time.Minute).DoBody(ctx, control.Update.Method, control.Update.URL(q), &progress{r: body, w: stderr}, &ans, nil)
	for _, s := range ans.Steps {
		fmt.Fprintln(stdout, s)
	}
	return exit(err, stderr), true
}

// progress counts an upload on w, every 4 MiB.
type progress struct {
	r    io.Reader
	w    io.Writer
	n    int64
	next int64
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.next == 0 {
		p.next = 4 << 20
	}
	if p.n >= p.next {
		fmt.Fprintf(p.w, "sent %d MiB\n", p.n>>20)
		p.next = p.n + 4<<20
	}
	return n, err
}

// dnsCmd runs dns log | top; ok is false for a usage error.
func dnsCmd(ctx context.Context, c *control.Client, args []string, stdout, stderr io.Writer) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	q := url.Values{}
	asJSON := false
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--json":
			asJSON = true
			q.Set("json", "1")
		case (a == "-f" || a == "--follow") && args[0] == "log":
			q.Set("follow", "1")
		case (a == "--client" && args[0] == "log" || a == "-n" && args[0] == "top") && i+1 < len(args):
			i++
			q.Set(strings.TrimLeft(a, "-"), args[i])
		default:
			return 0, false
		}
	}
	switch args[0] {
	case "log":
		return exit(c.Stream(ctx, control.DNSLog.URL(q), stdout), stderr), true
	case "top":
		var raw []byte
		var t status.DNSTop
		if err := c.Do(ctx, control.DNSTop.Method, control.DNSTop.URL(q), &t, &raw); err != nil {
			return exit(err, stderr), true
		}
		if asJSON {
			_, err := stdout.Write(raw)
			return exit(err, stderr), true
		}
		return exit(t.WriteText(stdout), stderr), true
	}
	return 0, false
}

// remoteCmd runs remote add | list | delete; ok is false for a usage error.
func remoteCmd(ctx context.Context, c *control.Client, args []string, stdout, stderr io.Writer) (int, bool) {
	switch {
	case len(args) >= 2 && args[0] == "add" && (len(args) == 2 || len(args) == 3 && args[2] == "--full"):
		var q url.Values
		if len(args) == 3 {
			q = url.Values{"full": {"1"}}
		}
		var dev control.RemoteDevice
		if err := c.Do(ctx, control.RemoteAdd.Method, control.RemoteAdd.URL(q, args[1]), &dev, nil); err != nil {
			return exit(err, stderr), true
		}
		qr, err := qrcode.New(dev.Config, qrcode.Low)
		if err != nil {
			return exit(err, stderr), true
		}
		// Light modules as glyphs on a black background, whatever the
		// terminal's colours: the code scans the right way round.
		var code strings.Builder
		for _, line := range strings.Split(strings.TrimSuffix(qr.ToSmallString(false), "\n"), "\n") {
			fmt.Fprintf(&code, "\x1b[40;97m%s\x1b[0m\n", line)
		}
		fmt.Fprintf(stdout, "# %s: import this in the WireGuard app, or scan the code below. Its private key is shown only now.\n%s\n%s",
			dev.Name, dev.Config, code.String())
		return 0, true
	case len(args) == 2 && args[0] == "delete":
		return exit(c.Do(ctx, control.RemoteDelete.Method, control.RemoteDelete.URL(nil, args[1]), nil, nil), stderr), true
	case len(args) >= 1 && args[0] == "list":
		asJSON, ok := jsonFlag(args[1:])
		if !ok {
			return 0, false
		}
		var raw []byte
		var st status.Status
		if err := c.Do(ctx, control.Status.Method, control.Status.URL(nil), &st, &raw); err != nil {
			return exit(err, stderr), true
		}
		if st.Remote == nil {
			return exit(fmt.Errorf("no [remote] in the config"), stderr), true
		}
		if asJSON {
			b, _ := json.MarshalIndent(st.Remote, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
			return 0, true
		}
		return exit(st.Remote.WriteText(stdout), stderr), true
	}
	return 0, false
}
