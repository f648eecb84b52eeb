package images

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// artifact is an update built for the test: the UKI and what to upload
// it with.
type artifact struct {
	file, sha256, sig string
	data              []byte
}

// buildUpdate builds routerd as version (with build tags, if any) and its
// update artifact, signed with key.
func buildUpdate(t *testing.T, dir, version, tags, key string) artifact {
	t.Helper()
	out := filepath.Join(dir, version)
	os.MkdirAll(out, 0o755)
	ld := fmt.Sprintf("-s -w -X github.com/routerd/routerd/router.Version=%s -X github.com/routerd/routerd/router.BuildTime=%s",
		version, time.Now().UTC().Format(time.RFC3339))
	args := []string{"go", "build", "-trimpath", "-ldflags", ld, "-o", filepath.Join(out, "routerd")}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	build := lab.Command(context.Background(), append(args, "../cmd/routerd")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: it is the image's /init
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", version, err, b)
	}
	if b, err := lab.Command(context.Background(), "go", "run", "./mkimage", "-uki-only", "-routerd", filepath.Join(out, "routerd"),
		"-out", filepath.Join(out, "routerd.img"), "-cache", "build/cache", "-signing-key", key).CombinedOutput(); err != nil {
		t.Fatalf("mkimage %s: %v\n%s", version, err, b)
	}
	a := artifact{file: filepath.Join(out, "routerd.efi")}
	a.data, _ = os.ReadFile(a.file)
	sum := sha256.Sum256(a.data)
	a.sha256 = hex.EncodeToString(sum[:])
	sig, _ := os.ReadFile(a.file + ".sig")
	a.sig = strings.TrimSpace(string(sig))
	return a
}

// signingKey writes an ed25519 key pair as openssl would: the private
// key (PKCS #8) for mkimage, the public one (PKIX) for the config.
func signingKey(t *testing.T, dir string) (priv, pub string) {
	pk, sk, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(sk)
	priv = filepath.Join(dir, "update.key")
	os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pder, _ := x509.MarshalPKIXPublicKey(pk)
	return priv, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}))
}

// TestImageUpdate: one VM, updated in place over SSH from the LAN. Bad
// uploads are refused with nothing written; a good update boots on
// probation and commits; a power cut while the next one is being written
// boots the committed version again (a reboot stays on it); a version
// that is never healthy is rolled back by the box itself, which says why.
func TestImageUpdate(t *testing.T) {
	requireQemu(t, "ssh", "ssh-keygen", "dnsmasq", "go")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	host := l.NewRouter(isp)
	lan := host.AddLAN()
	client := lan.AddClient()
	client.SetStatic(50)
	key := filepath.Join(l.Dir, "admin")
	if out, err := lab.Command(context.Background(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	priv, signPub := signingKey(t, l.Dir)
	os.WriteFile(filepath.Join(l.Dir, "update.pub"), []byte(signPub), 0o644) // for --check here
	cfg := imageConfigBase + `
[admin]
listen = ["lan0"]

[update]
signing_key = "update.pub"
probation = "20s"
`
	img := buildImage(t, l.Dir, cfg, map[string]string{"authorized_keys": string(pub), "update.pub": signPub}, true)
	v2 := buildUpdate(t, l.Dir, "v2-test", "", priv)
	broken := buildUpdate(t, l.Dir, "v3-broken", "routerd_broken", priv)
	v1 := versionOf(t)
	nics := wire(host, lan)
	start := time.Now()

	vm := startVM(t, l, host.NS, img, true, nics...)
	ssh := func(stdin io.Reader, args ...string) (string, error) { return vmSSH(client, key, stdin, args...) }
	waitBoot := func(n int, what string) {
		t.Helper()
		l.Eventually(180*time.Second, fmt.Sprintf("boot %d (%s) ready", n, what), func() error {
			if done, err := vm.proc.Exited(); done {
				return fmt.Errorf("qemu exited: %v", err)
			}
			if got := strings.Count(vm.console(), `msg="routerd ready"`); got < n {
				return fmt.Errorf("%d ready lines", got)
			}
			return nil
		})
	}
	// slots waits for the status to show what is wanted of the slots.
	slots := func(what string, ok func(u *status.Update) error) *status.Update {
		t.Helper()
		var u *status.Update
		l.Eventually(120*time.Second, what, func() error {
			st, err := vmStatus(client, key)
			if err != nil {
				return err
			}
			if u = st.Update; u == nil {
				return fmt.Errorf("no update section")
			}
			return ok(u)
		})
		return u
	}
	running := func(u *status.Update) (run, committed string) {
		for _, s := range u.Slots {
			if s.Running {
				run = s.Name + " " + s.Version
			}
			if s.Committed {
				committed = s.Name + " " + s.Version
			}
		}
		return run, committed
	}
	onSlot := func(want string) func(u *status.Update) error {
		return func(u *status.Update) error {
			if r, c := running(u); r != want || c != want || u.Attempt != nil {
				return fmt.Errorf("running %q, committed %q, attempt %+v; want %q", r, c, u.Attempt, want)
			}
			return nil
		}
	}

	waitBoot(1, v1)
	slots("the image on slot A", onSlot("A "+v1))

	// Refused: nothing written, no boot entry, no attempt.
	corrupt := bytes.Clone(v2.data)
	corrupt[len(corrupt)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		data []byte
		args []string
		want string
	}{
		{"truncated", v2.data[:len(v2.data)/3], []string{"--signature", v2.sig}, "refused"},
		{"corrupted", corrupt, []string{"--signature", v2.sig}, "signature does not verify"},
		{"wrong --sha256", v2.data, []string{"--sha256", strings.Repeat("0", 64), "--signature", v2.sig}, "sha256"},
		{"unsigned", v2.data, []string{"--sha256", v2.sha256}, "unsigned"},
	} {
		out, err := ssh(bytes.NewReader(tc.data), append([]string{"update"}, tc.args...)...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s upload: %v, %q; want refused (%s)", tc.name, err, out, tc.want)
		}
	}
	slots("nothing written by the refused uploads", func(u *status.Update) error {
		if u.Slots[1].Version != "" || u.Attempt != nil {
			return fmt.Errorf("slot B %+v, attempt %+v", u.Slots[1], u.Attempt)
		}
		return onSlot("A " + v1)(u)
	})

	// A good update: boots on probation and commits.
	out, err := ssh(bytes.NewReader(v2.data), "update", "--sha256", v2.sha256, "--signature", v2.sig)
	if err != nil || !strings.Contains(out, "written to slot B") || !strings.Contains(out, "rebooting now") {
		t.Fatalf("update to v2: %v\n%s", err, out)
	}
	waitBoot(2, "v2")
	u := slots("v2 committed", onSlot("B v2-test"))
	if u.Last == nil || u.Last.Outcome != "committed" || u.Last.Version != "v2-test" || u.Last.From != "A" {
		t.Errorf("last update %+v, want v2-test committed from A", u.Last)
	}
	if !strings.Contains(vm.console(), "new version on probation") || !strings.Contains(vm.console(), "watchdog armed") {
		t.Errorf("the console does not show the probation under a watchdog:\n%s", vm.console())
	}
	// A power cut while the next update is being written to slot A: the
	// committed v2 boots (a reboot stays on it), slot A keeps v1.
	receiving := strings.Count(vm.console(), "update: receiving: 4 MiB")
	pr, pw := io.Pipe()
	upload := vmSSHCmd(client, key, pr, "update", "--signature", broken.sig)
	if err := upload.Start(); err != nil {
		t.Fatal(err)
	}
	go pw.Write(broken.data[:len(broken.data)/2]) // and then nothing: the upload is in the middle
	l.Eventually(60*time.Second, "the upload being written", func() error {
		if strings.Count(vm.console(), "update: receiving: 4 MiB") == receiving {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	vm.proc.Signal(syscall.SIGKILL) // the power cut
	<-vm.proc.Done()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	upload.Process.Kill() // its peer is gone: no ssh left behind
	upload.Wait()
	vm = startVM(t, l, host.NS, img, true, nics...)
	waitBoot(1, "after the power cut")
	u = slots("v2 after the power cut", onSlot("B v2-test"))
	if u.Slots[0].Version != v1 || u.Attempt != nil {
		t.Errorf("after the power cut: slot A %+v (want %s), attempt %+v", u.Slots[0], v1, u.Attempt)
	}

	// A version that never gets healthy: the box comes back by itself.
	out, err = ssh(bytes.NewReader(broken.data), "update", "--signature", broken.sig)
	if err != nil || !strings.Contains(out, "written to slot A") {
		t.Fatalf("update to the broken build: %v\n%s", err, out)
	}
	waitBoot(2, "the broken build")
	waitBoot(3, "v2 again, rolled back")
	u = slots("back on v2, the rollback reported", onSlot("B v2-test"))
	if u.Last == nil || u.Last.Outcome != "rolled back" || u.Last.Version != "v3-broken" || !strings.Contains(u.Last.Reason, "component lan") {
		t.Errorf("last update %+v, want v3-broken rolled back because of the lan component", u.Last)
	}
	if out, err := ssh(nil, "status"); err != nil || !strings.Contains(out, "ROLLED BACK v3-broken") {
		t.Errorf("ssh status does not report the rollback (%v):\n%s", err, out)
	}
	t.Logf("five boots, a power cut, an update and a rollback in %s", time.Since(start).Round(time.Second))
	if out, err := ssh(nil, "poweroff"); err != nil {
		t.Errorf("ssh poweroff: %v\n%s", err, out)
	}
	vm.waitPoweroff(t, "routerd: powering off")
}

// versionOf is the version of the routerd the image is built from.
func versionOf(t *testing.T) string {
	out, err := lab.Command(context.Background(), filepath.Join(os.Getenv("ROUTERD_BIN_DIR"), "routerd"), "--version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 {
		t.Fatalf("routerd --version: %v %q", err, out)
	}
	return f[1]
}
