package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/sqm"
	"github.com/vishvananda/netlink"
)

// TestSQMRefusedWithoutCake: on a kernel without CAKE (this machine's),
// [sqm] is refused by routerd -check with a message that names what is
// missing, and routerd started with it exits before it makes anything:
// no namespace, no shaper device.
func TestSQMRefusedWithoutCake(t *testing.T) {
	lab.Require(t)
	if sqm.Supported(false) == nil {
		msg := "this kernel has CAKE: the refusal is for kernels without it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set: the test must run)")
		}
		t.Skip(msg)
	}
	l := lab.New(t)
	routerd, _ := lab.Binaries(t)
	b, err := os.ReadFile("../../docs/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		`wan = "wan" `, fmt.Sprintf(`wan = "%s-wan" `, l.Prefix),
		`vpn = "vpn" `, fmt.Sprintf(`vpn = "%s-vpn" `, l.Prefix),
		`state_dir = "/var/lib/routerd"`, fmt.Sprintf(`state_dir = %q`, filepath.Join(l.Dir, "state")),
	).Replace(string(b))
	if !strings.Contains(cfg, l.Prefix+"-wan") {
		t.Fatal("the example's [netns] changed: this test's replacements no longer apply")
	}
	cfg = strings.Replace(cfg, "\n[[lan]]", "\n[sqm]\nupload = \"38mbit\"\ndownload = \"95mbit\"\n\n[[lan]]", 1)
	path := filepath.Join(l.Dir, "sqm.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(routerd, "--config", path, "--check").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("--check with [sqm] on a kernel without CAKE: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), path+": sqm: ") || !strings.Contains(string(out), "sch_cake") {
		t.Errorf("--check does not say that [sqm] needs sch_cake:\n%s", out)
	}
	t.Logf("routerd --check: %s", strings.TrimSpace(string(out)))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, routerd, "--config", path).CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || ctx.Err() != nil {
		t.Fatalf("routerd with [sqm] on a kernel without CAKE: %v, want exit status 1 at once\n%s", err, out)
	}
	if !strings.Contains(string(out), "sch_cake") {
		t.Errorf("routerd's refusal does not name sch_cake:\n%s", out)
	}
	for _, ns := range []string{l.Prefix + "-wan", l.Prefix + "-vpn"} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s made by a refused config", ns)
		}
	}
	for _, dev := range []string{sqm.IfbUp, sqm.IfbDown} {
		if _, err := netlink.LinkByName(dev); err == nil {
			t.Errorf("%s made by a refused config", dev)
		}
	}
}
