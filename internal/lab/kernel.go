package lab

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab/vm"
)

// The full-kernel lab. The machines that build and test routerd may run a
// kernel without 802.1Q, PPPoE, CAKE, flowtables or WireGuard; Debian's
// kernel, the image's, has them all. A test that needs such a feature
// calls RequireKernel: where the running kernel has the feature the test
// goes on here; elsewhere it runs, whole, in a qemu guest booted from
// Debian's kernel (internal/lab/vm), one guest per test binary, with the
// host's root file system, programs and test binary. With Main, the guest
// runs them as a batch while the host runs its own tests (vmbatch.go).

const (
	// inVMEnv is set in the guest: a test there never delegates again.
	inVMEnv = "ROUTERD_IN_VM"
	// KernelOnlyEnv, when set, skips every lab test that does not need
	// the full kernel (make vmtest).
	KernelOnlyEnv = "ROUTERD_KERNEL_TESTS_ONLY"
)

var (
	kernelTestsMu sync.Mutex
	kernelTests   = map[string]bool{} // top-level names of tests that need the full kernel or their own machine
)

// RequireKernel says that t needs the named kernel modules ("8021q",
// "sch_cake", "wireguard", "nf_flow_table", as Debian's kernel calls
// them). It returns false when the running kernel has them (loaded, built
// in, or loaded now by modprobe): the test goes on here. Otherwise it runs
// the test in the VM lab, reports its output and result as t's, and
// returns true: the caller must return at once.
//
//	if lab.RequireKernel(t, "wireguard") {
//		return // it ran in the VM lab
//	}
//
// It never skips silently: a guest that cannot boot fails the test, and
// without root it skips only outside CI, like Require.
func RequireKernel(t testing.TB, modules ...string) bool {
	t.Helper()
	return requireKernel(t, false, modules)
}

// RequireKernelAlone is RequireKernel for a test that measures latency:
// in the VM lab it runs after the other tests, with nothing else running
// in the guest or on the host (it calls t.Parallel to wait for the
// host's other tests, and the guest runs one request at a time).
func RequireKernelAlone(t *testing.T, modules ...string) bool {
	t.Helper()
	return requireKernel(t, true, modules)
}

func requireKernel(t testing.TB, alone bool, modules []string) bool {
	t.Helper()
	markKernelTest(t)
	if alone && os.Getenv(batchEnv) != "" {
		t.Skip("it runs alone, after the VM lab's batch")
	}
	Require(t)
	missing := missingModules(modules)
	if len(missing) == 0 {
		return false
	}
	if InVM() {
		t.Fatalf("the VM lab's kernel lacks %s", strings.Join(missing, ", "))
	}
	why := "this kernel lacks " + strings.Join(missing, ", ")
	if alone {
		t.(*testing.T).Parallel()
	} else if fromBatch(t, why) {
		return true
	}
	runInVM(t, why)
	return true
}

// RequireOwnMachine says that t needs a machine of its own: it uses the
// initial network namespace (NewRouterInInitNS), where the machine-wide
// settings are, as routerd on the appliance does. It always runs in the
// VM lab, whose guest is thrown away after; RequireOwnMachine returns true
// when it ran there and the caller must return.
func RequireOwnMachine(t testing.TB) bool {
	t.Helper()
	markKernelTest(t)
	Require(t)
	if InVM() {
		return false
	}
	if !fromBatch(t, "it needs a machine of its own") {
		runInVM(t, "it needs a machine of its own")
	}
	return true
}

// InVM reports whether this process runs in the VM lab's guest.
func InVM() bool { return os.Getenv(inVMEnv) != "" }

// startTimeout is how long routerd may take to start. Under qemu TCG, work
// that is all CPU runs tens of times slower than on the host (a relay's
// thousand forwards: 35 s against a second).
func startTimeout() time.Duration {
	if InVM() {
		return 3 * time.Minute
	}
	return time.Minute
}

// missingModules returns those of modules the running kernel has not got.
func missingModules(modules []string) []string {
	var missing []string
	for _, m := range modules {
		if !haveModule(m) {
			missing = append(missing, m)
		}
	}
	return missing
}

func haveModule(name string) bool {
	name = strings.ReplaceAll(name, "-", "_")
	if _, err := os.Stat("/sys/module/" + name); err == nil {
		return true
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		release := strings.TrimSpace(string(b))
		if builtin, err := os.ReadFile(filepath.Join("/lib/modules", release, "modules.builtin")); err == nil {
			for _, l := range strings.Fields(string(builtin)) {
				if strings.ReplaceAll(strings.TrimSuffix(filepath.Base(l), ".ko"), "-", "_") == name {
					return true
				}
			}
		}
	}
	if _, err := exec.LookPath("modprobe"); err != nil {
		return false
	}
	record("modprobe")
	return exec.Command("modprobe", "-q", name).Run() == nil
}

// markKernelTest notes that t's top-level test needs the full kernel, for
// kernelOnly.
func markKernelTest(t testing.TB) {
	top, _, _ := strings.Cut(t.Name(), "/")
	kernelTestsMu.Lock()
	kernelTests[top] = true
	kernelTestsMu.Unlock()
}

// kernelOnly skips t under make vmtest, and in the VM lab's batch, unless
// it needs the full kernel.
func kernelOnly(t testing.TB) {
	if os.Getenv(batchEnv) == "" && (os.Getenv(KernelOnlyEnv) == "" || InVM()) {
		return
	}
	top, _, _ := strings.Cut(t.Name(), "/")
	kernelTestsMu.Lock()
	need := kernelTests[top]
	kernelTestsMu.Unlock()
	if !need {
		t.Skip("needs no more than this kernel (" + KernelOnlyEnv + " is set)")
	}
}

var (
	sharedVMOnce sync.Once
	sharedVM     *vm.VM
	sharedVMErr  error
	sharedVMBoot time.Duration
)

// theVM boots this test binary's guest, once, with the CPUs its first user
// asks for.
func theVM(cpus int) (*vm.VM, time.Duration, error) {
	sharedVMOnce.Do(func() {
		start := time.Now()
		sharedVM, sharedVMErr = bootVM(cpus)
		sharedVMBoot = time.Since(start)
	})
	return sharedVM, sharedVMBoot, sharedVMErr
}

func bootVM(cpus int) (*vm.VM, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	record("qemu-system-x86_64", "depmod", "apt-get", "dpkg-deb", "go")
	// The module's tree is written through to the host (go test -update
	// rewrites golden files there), and so is the programs log.
	opt := vm.Options{Cache: filepath.Join(root, "images/build/cache"), Module: root, RW: []string{root}, CPUs: cpus}
	if log := os.Getenv(ProgramsLogEnv); log != "" && !strings.HasPrefix(filepath.Dir(log)+"/", root+"/") {
		// Over 9p, unix sockets cannot be bound (ENXIO): the guest's
		// temporary directory, where the labs keep routerd's control
		// socket, must stay its own.
		if filepath.Clean(filepath.Dir(log)) == filepath.Clean(os.TempDir()) {
			return nil, fmt.Errorf("%s=%s: the VM lab writes it through over 9p, which would hide the guest's own %s; keep it elsewhere", ProgramsLogEnv, log, os.TempDir())
		}
		opt.RW = append(opt.RW, filepath.Dir(log))
	}
	// qemu is killed when the thread that started it ends (Pdeathsig), so
	// it starts from a thread that lives as long as the test binary.
	type booted struct {
		v   *vm.VM
		err error
	}
	ch := make(chan booted)
	go func() {
		runtime.LockOSThread()
		v, err := vm.Boot(context.Background(), opt)
		ch <- booted{v, err}
		select {} // keep the thread
	}()
	b := <-ch
	return b.v, b.err
}

// moduleRoot is the directory of routerd's go.mod, above the test's.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("lab: no go.mod above the working directory")
		}
		dir = parent
	}
}

// runInVM runs t (a test or a benchmark), by name, in the guest: the same
// test binary, the same environment (plus the binaries' directory, so the
// guest builds nothing).
func runInVM(t testing.TB, why string) {
	t.Helper()
	routerd, _ := Binaries(t)
	// Tests get two CPUs, for speed. A benchmark gets one: under TCG, with
	// two, where the scheduler puts a sender and the softirqs that
	// forward its packets moves a result by half or double; with one,
	// each packet's whole cost is what is measured.
	_, bench := t.(*testing.B)
	cpus := 2
	if bench {
		cpus = 1
	}
	v, boot, err := theVM(cpus)
	if err != nil {
		t.Fatalf("%s, and the VM lab did not boot: %v", why, err)
	}
	t.Logf("%s: running in the VM lab (Linux %s under qemu TCG, %d CPU, booted in %s)",
		why, v.Kernel, v.CPUs, boot.Round(100*time.Millisecond))
	var run []string
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	argv := []string{os.Args[0], "-test.run", strings.Join(run, "/"), "-test.count=1", "-test.v"}
	if bench {
		argv = []string{os.Args[0], "-test.run", "^$", "-test.bench", strings.Join(run, "/"), "-test.benchtime", "1x", "-test.count=1", "-test.v"}
	}
	argv = append(argv, packageFlags()...)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := d.Deadline(); ok {
			argv = append(argv, "-test.timeout", time.Until(d).Round(time.Second).String())
		}
	}

	pr, pw := io.Pipe()
	done := make(chan struct{})
	var out strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			fmt.Fprintln(t.Output(), sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	res, err := v.Run(vm.Request{Argv: argv, Env: guestEnv(routerd), Dir: workDir()}, pw)
	pw.Close()
	<-done
	if err != nil {
		t.Fatalf("the VM lab: %v", err)
	}
	// A benchmark that ran says its name at the start of a line (with
	// GOMAXPROCS) and no FAIL; a test says PASS.
	text := out.String()
	passed := strings.Contains(text, "--- PASS: "+t.Name()+" (")
	if bench {
		passed = regexp.MustCompile(`(?m)^\s*`+regexp.QuoteMeta(t.Name())+`(/\S+)?(-\d+)?\s+\d+`).MatchString(text) &&
			!strings.Contains(text, "--- FAIL: ")
	}
	switch {
	case res.Code == 0 && passed:
	case res.Code == 0 && strings.Contains(text, "--- SKIP: "+t.Name()+" ("):
		t.Skip("skipped in the VM lab")
	default:
		t.Fatalf("failed in the VM lab (exit %d %s); what the test said last:\n%s", res.Code, res.Error, testSaid(text, 15))
	}
}

// testSaid is the last n messages a test's own files logged in text (the
// guest's output): under the processes' output that a failed test dumps,
// CI's excerpt of the log would not reach them.
func testSaid(text string, n int) string {
	msg := regexp.MustCompile(`^\s+\w+_test\.go:\d+: `)
	var said []string
	for line := range strings.Lines(text) {
		if msg.MatchString(line) && !strings.Contains(line, "--- output of ") && !strings.HasSuffix(line, "lab: runs as root\n") {
			said = append(said, strings.TrimSpace(line))
		}
	}
	said = said[max(0, len(said)-n):]
	for i, l := range said {
		if len(l) > 300 {
			said[i] = l[:300] + "…"
		}
	}
	return strings.Join(said, "\n")
}

// packageFlags are the package's own flags (-update), which go along to
// the guest; go test's own (-test.*) are the guest's to choose.
func packageFlags() []string {
	var argv []string
	flag.Visit(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Name, "test.") {
			argv = append(argv, "-"+f.Name+"="+f.Value.String())
		}
	})
	return argv
}

// guestEnv is the environment of a test binary in the guest: the host's,
// plus the binaries' directory, so that the guest builds nothing.
func guestEnv(routerd string, extra ...string) []string {
	return append(append(os.Environ(), inVMEnv+"=1", "ROUTERD_BIN_DIR="+filepath.Dir(routerd)), extra...)
}

func workDir() string {
	wd, _ := os.Getwd()
	return wd
}
