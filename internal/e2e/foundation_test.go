package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

func TestCheckExampleConfig(t *testing.T) {
	routerd, _ := lab.Binaries(t)
	out, err := exec.Command(routerd, "--config", "../../docs/config.example.toml", "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("--check on the example: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK") {
		t.Errorf("--check output lacks OK:\n%s", out)
	}
}

func TestCheckListsEveryError(t *testing.T) {
	routerd, _ := lab.Binaries(t)
	b, err := os.ReadFile("../../docs/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.NewReplacer(
		`hostname = "router"`, `hostname = "my router"`,
		`vpn = "vpn"`, `vpn = "wan"`,
		`set_mac = "00:11:22:33:44:55"`, `set_mac = "01:11:22:33:44:55"`,
		`mtu = 1500`, `mtu = 100000`,
		`range = ["192.168.1.100", "192.168.1.250"]`, `range = ["192.168.2.10", "192.168.1.250"]`,
		`ip = "192.168.1.10"`, `ip = "10.1.1.1"`,
		`public_key = "h+5fSldkanbDmMk5d30tm2Kuwn5Qq6e7mEcqjLQmCF8="`, `public_key = "nope"`,
		`endpoint = "198.51.100.7:51820"`, `endpoint = "198.51.100.7"`,
		`default = "vpn"`, `default = "fast"`,
		`port = 8443`, `port = 0`,
	).Replace(string(b))
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte(bad), 0o644)
	cmd := exec.Command(routerd, "--config", path, "--check")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("--check on a bad config: err %v, want exit status 1\n%s", err, out)
	}
	var paths []string
	for _, line := range strings.Split(string(out), "\n") {
		// "<file>: <field path>: <message>"
		if rest, ok := strings.CutPrefix(line, path+": "); ok && !strings.Contains(rest, "error(s)") {
			paths = append(paths, strings.SplitN(rest, ":", 2)[0])
		}
	}
	for _, want := range []string{"hostname", "netns.vpn", "wan.set_mac", "wan.mtu", "lan[0].dhcp4.range",
		"lan[0].dhcp4.reservation[0].ip", "vpn.peer[0].public_key", "vpn.peer[0].endpoint", "routing.default",
		"firewall.port_forward[0].port"} {
		found := false
		for _, p := range paths {
			found = found || p == want
		}
		if !found {
			t.Errorf("no error for %s; got paths %v", want, paths)
		}
	}
	if len(paths) < 10 {
		t.Errorf("got %d errors, want at least 10:\n%s", len(paths), out)
	}
}

// TestSupervisor runs routerd and checks the control socket, the component
// table and reload: a broken config is refused and the old one keeps running.
func TestSupervisor(t *testing.T) {
	lab.Require(t)
	l := lab.New(t)
	r := l.NewRouter(nil)
	r.AddLAN()
	cfg := r.Config(lab.ConfigOptions{WANWait: time.Second})
	rd := r.StartRouterd(cfg)

	fi, err := os.Stat(r.Sock)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("socket mode = %o, want 600", got)
	}
	di, _ := os.Stat(filepath.Dir(r.Sock))
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("socket dir mode = %o, want 700", got)
	}

	st, err := getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	hash := st.ConfigHash
	if st.ConfigPath != rd.ConfigPath || len(hash) != 64 || st.Version == "" {
		t.Errorf("status header = %q %q %q", st.Version, st.ConfigPath, hash)
	}
	text, err := rd.Ctl("status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Components") || !strings.Contains(text, "NAME") {
		t.Errorf("routerctl status lacks the component table:\n%s", text)
	}
	for _, c := range st.Components {
		if !strings.Contains(text, c.Name) {
			t.Errorf("routerctl status lacks component %s:\n%s", c.Name, text)
		}
	}

	// A broken config on SIGHUP is refused; routerd keeps running the old one.
	r.WriteConfig(strings.Replace(cfg, `hostname = "gw"`, `hostname = "g w"`, 1))
	rd.Proc.Signal(syscall.SIGHUP)
	l.Eventually(10*time.Second, "reload refused in status", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if st.Reload == nil || !strings.Contains(st.Reload.Error, "hostname") {
			return errors.New("no refused reload yet")
		}
		if st.ConfigHash != hash {
			return errors.New("config hash changed after a refused reload")
		}
		return nil
	})
	if text, _ := rd.Ctl("status"); !strings.Contains(text, "REFUSED") {
		t.Errorf("routerctl status does not show the refused reload:\n%s", text)
	}
	// routerctl reload reports the refusal as an error with exit status 1.
	if _, err := rd.Ctl("reload"); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("routerctl reload of a broken config: %v, want exit status 1", err)
	}

	// A good new config is taken.
	r.WriteConfig(strings.Replace(cfg, `hostname = "gw"`, `hostname = "gw2"`, 1))
	if _, err := rd.Ctl("reload"); err != nil {
		t.Fatal(err)
	}
	st, err = getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	if st.ConfigHash == hash || st.Reload == nil || st.Reload.Error != "" {
		t.Errorf("after a good reload: hash %s (old %s), reload %+v", st.ConfigHash, hash, st.Reload)
	}

	// SIGTERM stops routerd cleanly.
	rd.Proc.Signal(syscall.SIGTERM)
	select {
	case <-rd.Proc.Done():
		if _, err := rd.Proc.Exited(); err != nil {
			t.Errorf("routerd exit on SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("routerd did not exit on SIGTERM")
	}
	if _, err := rd.Ctl("status"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("routerctl status after stop: %v, want 'not running'", err)
	}
}
