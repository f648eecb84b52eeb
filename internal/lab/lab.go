// Package lab builds test topologies out of network namespaces: an ISP with
// a real dnsmasq and an echo service, a WireGuard VPN provider, the router's
// namespace with veth "NICs", and LAN clients on a switch, each with real
// tools. Every namespace carries a prefix unique to the test, and everything
// the lab made or started is removed by t.Cleanup, also when the test fails.
//
// The lab shells out to ip, nft, dnsmasq and friends on purpose: they are the
// independent peers routerd is tested against.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab/marker"
	"github.com/routerd/routerd/internal/lab/vm"
	"github.com/routerd/routerd/netns"
	"github.com/vishvananda/netlink"
)

// T is what the lab needs of a test; *testing.T satisfies it, and so does the
// demo's runner.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Require skips the test unless it runs as root with the named tools on
// PATH. With CI set in the environment a missing prerequisite fails the test
// instead: CI must never pass by skipping.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	kernelOnly(t)
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		record(tool)
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		t.Log(marker.Root)
		return
	}
	msg := "lab test needs " + strings.Join(missing, ", ")
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: integration tests must run)", msg)
	}
	t.Skip(msg)
}

// Lab is one test's set of namespaces and processes.
type Lab struct {
	T      T
	Prefix string // e.g. "rl3fa9c"; every namespace name starts with it
	Dir    string // scratch directory, removed at cleanup

	mu    sync.Mutex
	ns    []*NS
	procs []*Proc
	extra []func() // cleanups that run before namespaces are deleted
}

// New returns an empty lab whose cleanup is registered with t.
func New(t T) *Lab {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	dir, err := os.MkdirTemp("", "routerd-lab-")
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	l := &Lab{T: t, Prefix: "rl" + hex.EncodeToString(b), Dir: dir}
	t.Cleanup(l.cleanup)
	return l
}

// OnCleanup runs fn at cleanup, before processes are killed and namespaces
// deleted, in reverse order of registration.
func (l *Lab) OnCleanup(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.extra = append(l.extra, fn)
}

func (l *Lab) cleanup() {
	l.mu.Lock()
	extra, procs, nss := l.extra, l.procs, l.ns
	l.extra, l.procs, l.ns = nil, nil, nil
	l.mu.Unlock()
	for i := len(extra) - 1; i >= 0; i-- {
		extra[i]()
	}
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		nss[i].delete()
	}
	// Namespaces routerd made carry the prefix too; delete what is left.
	for _, name := range l.listNetns() {
		if strings.HasPrefix(name, l.Prefix) {
			(&NS{Name: name, lab: l}).delete()
		}
	}
	os.RemoveAll(l.Dir)
}

func (l *Lab) listNetns() []string {
	out, err := hostCmd("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// NS is a network namespace of the lab.
type NS struct {
	Name string
	lab  *Lab
}

// NewNS creates the namespace "<prefix>-<name>" with loopback up.
func (l *Lab) NewNS(name string) *NS {
	l.T.Helper()
	n := &NS{Name: l.Prefix + "-" + name, lab: l}
	if out, err := hostCmd("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		l.T.Fatalf("lab: ip netns add %s: %v: %s", n.Name, err, out)
	}
	l.mu.Lock()
	l.ns = append(l.ns, n)
	l.mu.Unlock()
	// Loopback up, and no duplicate address detection for the tests to
	// wait for: from here, not by ip and sysctl in the namespace (four
	// process starts, each tens of milliseconds under the VM lab's TCG).
	h, err := netns.Handle(n.Name)
	if err == nil {
		var lo netlink.Link
		if lo, err = h.LinkByName("lo"); err == nil {
			err = h.LinkSetUp(lo)
		}
		h.Close()
	}
	if err == nil {
		_, err = netns.SetSysctls([]netns.Sysctl{
			{NS: n.Name, Key: "net/ipv6/conf/all/accept_dad", Value: "0"},
			{NS: n.Name, Key: "net/ipv6/conf/default/accept_dad", Value: "0"}})
	}
	if err != nil {
		l.T.Fatalf("lab: namespace %s: %v", n.Name, err)
	}
	return n
}

// ExistingNS returns a handle for a namespace the lab did not create (one
// routerd made), without taking ownership of it.
func (l *Lab) ExistingNS(name string) *NS { return &NS{Name: name, lab: l} }

func (n *NS) delete() {
	// Processes still inside keep the namespace's links alive; the lab has
	// already stopped its own, so this only reaps what a test leaked.
	hostCmd("ip", "netns", "pids", n.Name).Run()
	hostCmd("ip", "netns", "del", n.Name).Run()
}

func hostCmd(argv ...string) *exec.Cmd { return Command(context.Background(), argv...) }

// Cmd returns a command that runs argv inside the namespace.
func (n *NS) Cmd(argv ...string) *exec.Cmd {
	return hostCmd(n.argv(argv)...)
}

// argv is what runs argv inside the namespace: ip netns exec, or for ip
// itself ip -n, one process instead of two and no mount namespace to
// set up (the labs run ip most; under the VM lab's TCG each process
// start is tens of milliseconds).
func (n *NS) argv(argv []string) []string {
	if len(argv) > 1 && argv[0] == "ip" && argv[1] != "netns" {
		return append([]string{"ip", "-n", n.Name}, argv[1:]...)
	}
	return append([]string{"ip", "netns", "exec", n.Name}, argv...)
}

// Run runs argv in the namespace and returns its combined output.
func (n *NS) Run(argv ...string) (string, error) {
	return n.RunContext(context.Background(), argv...)
}

// RunContext is Run with a deadline.
func (n *NS) RunContext(ctx context.Context, argv ...string) (string, error) {
	cmd := Command(ctx, n.argv(argv)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), n.Name, err, strings.TrimSpace(out.String()))
	}
	return out.String(), err
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(argv ...string) string {
	n.lab.T.Helper()
	out, err := n.Run(argv...)
	if err != nil {
		n.lab.T.Fatalf("lab: %v", err)
	}
	return out
}

// Proc is a background process started by the lab.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  *syncBuffer
	done chan struct{}
	err  error
}

// NetCmd returns a command that runs argv with only its network namespace
// switched. ip netns exec also gives the command a private mount namespace
// (to remount /sys), and namespaces the command creates there are not
// visible outside it; routerd, which creates namespaces, runs this way.
func (n *NS) NetCmd(argv ...string) *exec.Cmd {
	return hostCmd(append([]string{"nsenter", "--net=" + filepath.Join("/run/netns", n.Name), "--"}, argv...)...)
}

// Start starts argv in the namespace in the background; the lab kills it at
// cleanup. Its output is kept in p.Log and shown if the test failed.
func (n *NS) Start(name string, argv ...string) *Proc {
	n.lab.T.Helper()
	return n.start(name, n.Cmd(argv...))
}

// StartNet is Start with NetCmd.
func (n *NS) StartNet(name string, argv ...string) *Proc {
	n.lab.T.Helper()
	return n.start(name, n.NetCmd(argv...))
}

func (n *NS) start(name string, cmd *exec.Cmd) *Proc {
	n.lab.T.Helper()
	p := &Proc{Name: name, Cmd: cmd, Log: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Log, p.Log
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		n.lab.T.Fatalf("lab: start %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	n.lab.mu.Lock()
	n.lab.procs = append(n.lab.procs, p)
	n.lab.mu.Unlock()
	t := n.lab.T
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- output of %s%s", name, tail(p.Log.String(), dumpLines))
		}
	})
	return p
}

// dumpLines is how much of a process's output a failed test shows: its
// end, where the failure is, and little enough that the test's own
// messages stay in sight of a reader of CI's log.
const dumpLines = 80

// tail is the last n lines of s, saying how many it left out.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return ":\n" + strings.Join(lines, "\n")
	}
	return fmt.Sprintf(" (its last %d lines of %d):\n%s", n, len(lines), strings.Join(lines[len(lines)-n:], "\n"))
}

// Stop kills the process group with SIGTERM, then SIGKILL, and waits for it.
// A paused group (Lab.Pause) is continued, or it could not act on SIGTERM.
func (p *Proc) Stop() {
	p.Signal(syscall.SIGTERM)
	p.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Kill sends SIGKILL to the process alone and waits for it to exit.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	<-p.done
}

// Signal signals the whole process group.
func (p *Proc) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		syscall.Kill(-p.Cmd.Process.Pid, sig)
	}
}

// Pause stops every process the lab started (routerd, the ISP's daemons,
// iperf3 servers...), so that a benchmark measuring another lab has the
// machine to itself; Resume continues them. What the kernel does for the
// lab (its WireGuard timers, its links) goes on.
func (l *Lab) Pause() { l.signalAll(syscall.SIGSTOP) }

// Resume continues what Pause stopped.
func (l *Lab) Resume() { l.signalAll(syscall.SIGCONT) }

func (l *Lab) signalAll(sig syscall.Signal) {
	l.mu.Lock()
	procs := slices.Clone(l.procs)
	l.mu.Unlock()
	for _, p := range procs {
		p.Signal(sig)
	}
}

// Done is closed when the process exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

type syncBuffer = vm.Output

// Eventually polls cond until it returns nil or the deadline passes, then
// fails the test with cond's last error. It never sleeps to make timing pass:
// it retries something observable.
func (l *Lab) Eventually(timeout time.Duration, what string, cond func() error) {
	l.T.Helper()
	if err := Poll(timeout, cond); err != nil {
		l.T.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
}

// Poll retries cond every 50ms until it returns nil or timeout passes.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
