package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestSSHManagement: from a LAN client, OpenSSH with a listed key runs
// routerctl commands with routerctl's own output and exit codes; an
// unlisted key, a password, a pty, a shell and forwarding are refused; the
// WAN side cannot reach port 22 at all.
func TestSSHManagement(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "ssh", "ssh-keygen", "hping3", "curl")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c.SetStatic(50)
	key, other := filepath.Join(l.Dir, "admin"), filepath.Join(l.Dir, "intruder")
	for _, k := range []string{key, other} {
		c.NS.MustRun("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", filepath.Base(k), "-f", k)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// authorized_keys sits beside routerd.toml, with a comment and an
	// option prefix as OpenSSH users write it.
	if err := os.WriteFile(filepath.Join(l.Dir, "authorized_keys"), []byte("# the admin\nno-pty "+string(pub)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The update signing key: a config applied over SSH may not drop it.
	pk, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pk)
	if err := os.WriteFile(filepath.Join(l.Dir, "update.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.ServeEcho(l, c.NS, 8080) // behind a port forward
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Extra: fmt.Sprintf(`[admin]
listen = [%q]
ban_after = 5
ban_time = "10m"

[update]
signing_key = "update.pub"

[[firewall.port_forward]]
proto = "tcp"
port = 8080
to = "192.168.11.50:8080"
`, lan.Name)}))
	st := waitWANLease(t, l, rd, nil)
	gw := lan.Router4().Addr().String()

	ssh := func(ns *lab.NS, key, host string, args ...string) (string, error) {
		argv := append([]string{"ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"}, args...)
		argv = append(argv[:len(argv)-len(args)], append([]string{"anyone@" + host}, args...)...)
		return ns.Run(argv...)
	}
	// The same commands, the same output and exit codes as routerctl on
	// the box; a leading "routerctl" is fine.
	for _, cmd := range [][]string{{"leases", "--json"}, {"routerctl", "leases"}, {"vpn", "pubkey"}, {"nosuch"}} {
		viaSSH, sshErr := ssh(c.NS, key, gw, cmd...)
		args := cmd
		if args[0] == "routerctl" {
			args = args[1:]
		}
		local, localErr := rd.Ctl(args...)
		if exitCode(sshErr) != exitCode(localErr) || !strings.Contains(local, strings.TrimSpace(viaSSH)) {
			t.Errorf("ssh %v: exit %d %q; routerctl: exit %d %q", cmd, exitCode(sshErr), viaSSH, exitCode(localErr), local)
		}
	}
	// Status moves on between two calls (counters, "1s ago", and with them
	// the columns' widths): compare with every number-bearing word masked.
	numbers := regexp.MustCompile(`\S*[0-9]\S*`)
	norm := func(s string) string { return squeeze(numbers.ReplaceAllString(s, "N")) }
	viaSSH, err := ssh(c.NS, key, gw, "status")
	local, _ := rd.Ctl("status")
	if err != nil || norm(viaSSH) != norm(local) {
		t.Errorf("ssh status (%v):\n%s\nrouterctl status:\n%s", err, viaSSH, local)
	}

	// The host key: what status says is what the client sees, and what
	// ssh-keygen -lf says of the key file.
	full := mustStatus(t, rd)
	if full.Admin == nil {
		t.Fatal("no admin section in status")
	}
	keygen, err := c.NS.Run("ssh-keygen", "-l", "-f", filepath.Join(r.State, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(keygen); len(f) < 2 || !strings.HasPrefix(full.Admin.HostKey, f[0]+" "+f[1]+" ") {
		t.Errorf("status host key %q, ssh-keygen -lf says %q", full.Admin.HostKey, keygen)
	}
	verbose, _ := c.NS.Run("ssh", "-v", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "anyone@"+gw, "leases")
	if fp := strings.Fields(full.Admin.HostKey)[1]; !strings.Contains(verbose, "Server host key: ssh-ed25519 "+fp) {
		t.Errorf("the client saw another host key than %s:\n%s", fp, grepLines(verbose, "host key"))
	}

	refused := func(what string, out string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: %v, output %q, want a refusal saying %q", what, err, out, want)
		}
	}
	out, err := ssh(c.NS, other, gw, "status")
	refused("unlisted key", out, err, "Permission denied")
	out, err = c.NS.Run("ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive", "anyone@"+gw, "status")
	refused("password", out, err, "Permission denied")
	out, err = ssh(c.NS, key, gw)
	refused("a shell", out, err, "shell request failed")
	out, err = ssh(c.NS, key, gw, "-W", "127.0.0.1:22")
	refused("forwarding (-W)", out, err, "stdio forwarding failed")
	out, _ = c.NS.Run("ssh", "-tt", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "anyone@"+gw, "leases")
	if !strings.Contains(out, "PTY allocation request failed") {
		t.Errorf("ssh -tt: a pty was granted: %q", out)
	}
	if n := mustStatus(t, rd).Admin.AuthFailures; n == 0 {
		t.Error("failed authentications not counted")
	}

	// Logs: the kept lines by component, and following new ones.
	if out, err := ssh(c.NS, key, gw, "logs", "--component", "ssh", "--since", "1h"); err != nil || !strings.Contains(out, `msg="SSH login"`) || strings.Contains(out, "component=dns") {
		t.Errorf("logs --component ssh (%v):\n%s", err, out)
	}
	follower := c.NS.Start("ssh-logs-f", "ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "anyone@"+gw, "logs", "-f", "--since", "1s")
	l.Eventually(20*time.Second, "logs -f shows a new line", func() error {
		rd.Ctl("reload")
		if !strings.Contains(follower.Log.String(), "reload: config unchanged") {
			return fmt.Errorf("followed so far:\n%s", follower.Log.String())
		}
		return nil
	})
	follower.Stop()

	// Config from the LAN: show, a bad file refused whole, an unconfirmed
	// change rolled back by itself, a confirmed one kept across a restart.
	sshIn := func(stdin string, args ...string) (string, error) {
		argv := append([]string{"ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "anyone@" + gw}, args...)
		cmd := c.NS.Cmd(argv...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	orig, err := os.ReadFile(rd.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := ssh(c.NS, key, gw, "config", "show"); err != nil || out != string(orig) {
		t.Errorf("config show (%v) differs from the file:\n%s", err, out)
	}
	hash := mustStatus(t, rd).ConfigHash
	bad := string(orig) + "\n[[dns.record]]\nname = \"no spaces allowed\"\naddresses = [\"192.168.11.300\"]\n"
	out, err = sshIn(bad, "config", "apply")
	if exitCode(err) != 1 || !strings.Contains(out, "nothing applied") || !strings.Contains(out, "2 errors") {
		t.Errorf("a bad config: exit %d, %q; want exit 1 listing both errors", exitCode(err), out)
	}
	if now, _ := os.ReadFile(rd.ConfigPath); string(now) != string(orig) || mustStatus(t, rd).ConfigHash != hash {
		t.Error("a refused config changed the running one")
	}
	// Without [update] the signature check would be off: whoever holds an
	// SSH key could then install any code.
	unsigned := strings.Replace(string(orig), "[update]\nsigning_key = \"update.pub\"\n", "", 1)
	if unsigned == string(orig) {
		t.Fatal("the test's config has no [update] to drop")
	}
	out, err = sshIn(unsigned, "config", "apply")
	if exitCode(err) != 1 || !strings.Contains(out, "signing_key cannot be removed") {
		t.Errorf("a config without the signing key: exit %d, %q; want it refused", exitCode(err), out)
	}
	// Over SSH, update takes the image from standard input only: a file
	// name would be one on the router.
	out, err = ssh(c.NS, key, gw, "update", "/etc/shadow")
	if exitCode(err) != 1 || !strings.Contains(out, "standard input") || strings.Contains(out, "sha256") {
		t.Errorf("ssh update /etc/shadow: exit %d, %q; want it refused unread", exitCode(err), out)
	}
	good := string(orig) + "\n[[dns.record]]\nname = \"applied.lan\"\naddresses = [\"192.168.11.77\"]\n"
	resolves := func() bool {
		got, _ := c.NS.Run("dig", "+short", "+time=1", "+tries=1", "@"+gw, "applied.lan")
		return strings.TrimSpace(got) == "192.168.11.77"
	}
	// The change that cuts the admin off: the LAN address moves from .1
	// to .2, and nobody confirms from the new one.
	moved := strings.Replace(string(orig), `"192.168.11.1/24"`, `"192.168.11.2/24"`, 1)
	if moved == string(orig) {
		t.Fatal("no LAN address to move in the config")
	}
	reaches := func(a string) bool {
		_, err := c.NS.Run("ping", "-c", "1", "-W", "1", a)
		return err == nil
	}
	if out, err := sshIn(moved, "config", "apply", "--confirm", "6s"); err != nil || !strings.Contains(out, "config confirm") {
		t.Fatalf("config apply --confirm 6s: %v\n%s", err, out)
	}
	l.Eventually(20*time.Second, "the router on its new address only", func() error {
		if !reaches("192.168.11.2") || reaches(gw) {
			addrs, _ := r.NS.Run("ip", "-br", "addr", "show", "dev", lan.Name)
			return fmt.Errorf("reaches .2: %v, .1: %v; the router has %s", reaches("192.168.11.2"), reaches(gw), addrs)
		}
		return nil
	})
	if mustStatus(t, rd).ConfirmBy == nil {
		t.Error("status does not say the change awaits confirmation")
	}
	l.Eventually(30*time.Second, "the unconfirmed change rolled back", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if st.Rollback == nil || st.ConfigHash != hash || st.Phase != "ready" || !reaches(gw) || reaches("192.168.11.2") {
			return fmt.Errorf("rollback %+v, hash %.12s, %s, reaches .1: %v", st.Rollback, st.ConfigHash, st.Phase, reaches(gw))
		}
		return nil
	})
	if now, _ := os.ReadFile(rd.ConfigPath); string(now) != string(orig) {
		t.Error("the file was not restored by the rollback")
	}
	if out, err := sshIn(good, "config", "apply", "--confirm", "1m"); err != nil {
		t.Fatalf("config apply: %v\n%s", err, out)
	}
	l.Eventually(20*time.Second, "the second change in force", func() error {
		if _, err := ssh(c.NS, key, gw, "config", "confirm"); err != nil {
			return err
		}
		return nil
	})
	rd.Restart()
	if st := mustStatus(t, rd); st.ConfirmBy != nil || !resolves() {
		t.Errorf("after confirm and restart: confirm_by %v, applied.lan resolves %v", st.ConfirmBy, resolves())
	}

	// From the WAN side port 22 does not answer.
	wan := st.WAN.DHCP.Address
	wanAddr := wan[:strings.IndexByte(wan, '/')]
	out, err = ssh(isp.NS, key, wanAddr, "status")
	refused("SSH from the WAN", out, err, "timed out")

	// An agent that offers other keys before the listed one logs in, as
	// often as it likes, without a failure counted: failures are counted
	// per connection, and a login forgets the source's earlier ones.
	failures := mustStatus(t, rd).Admin.AuthFailures
	for i := 0; i < 6; i++ {
		if _, err := c.NS.Run("ssh", "-i", other, "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5", "anyone@"+gw, "status"); err != nil {
			t.Fatalf("login %d offering the intruder's key first: %v", i, err)
		}
	}
	if n := mustStatus(t, rd).Admin.AuthFailures; n != failures {
		t.Errorf("logins offering another key first counted %d failures", n-failures)
	}

	// Failed logins ban the client: its new connections to the router are
	// dropped (the good key no longer connects) until the ban is lifted.
	client := "192.168.11.50"
	for i := 0; i < 5; i++ {
		ssh(c.NS, other, gw, "status")
	}
	_, err = c.NS.Run("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=2", "anyone@"+gw, "leases")
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("five failed logins did not ban the client: %v", err)
	}
	if list, _ := rd.Ctl("ban", "list"); !strings.Contains(list, client+"  lan") {
		t.Errorf("ban list lacks %s:\n%s", client, list)
	}
	if n := mustStatus(t, rd).Admin.Banned; n != 1 {
		t.Errorf("status counts %d bans, want 1", n)
	}
	if _, err := rd.Ctl("ban", "delete", client); err != nil {
		t.Fatal(err)
	}
	if _, err := ssh(c.NS, key, gw, "leases"); err != nil {
		t.Errorf("after ban delete: %v", err)
	}

	// A port scan from the WAN bans the scanner, port forwards included.
	if got, err := lab.Command(t.Context(), "ip", "netns", "exec", isp.NS.Name, "curl", "-sS", "-m", "5",
		"http://"+wanAddr+":8080/").CombinedOutput(); err != nil {
		t.Fatalf("the port forward before the scan: %v %s", err, got)
	}
	isp.NS.Run("hping3", "-q", "-S", "-p", "++1", "-c", "40", "-i", "u20000", wanAddr)
	if got, err := isp.NS.Run("curl", "-sS", "-m", "3", "http://"+wanAddr+":8080/"); err == nil {
		t.Errorf("the scanner still reaches the port forward: %s", got)
	}
	if list, _ := rd.Ctl("ban", "list"); !strings.Contains(list, lab.ISPDown4.Addr().String()+"  wan") {
		t.Errorf("ban list lacks the scanner %s:\n%s", lab.ISPDown4.Addr(), list)
	}
	rd.Ctl("ban", "delete", lab.ISPDown4.Addr().String())
	if got, err := isp.NS.Run("curl", "-sS", "-m", "5", "http://"+wanAddr+":8080/"); err != nil {
		t.Errorf("after ban delete the port forward is still closed: %v %s", err, got)
	}
}

// exitCode is a command error's exit status (0 for none).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var code int
	if i := strings.Index(err.Error(), "exit status "); i >= 0 {
		fmt.Sscan(err.Error()[i+len("exit status "):], &code)
	}
	return code
}
