package lab

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab/vm"
)

// The VM lab's batch. Run one by one as the host reaches them, the VM
// lab's tests kept the host idle for their whole time, and the host's own
// tests the guest. Main starts them at once instead, in one run in the
// guest, while the host runs its own: when the host reaches a VM lab test,
// it reports what that test did in the batch (usually done by then). The
// tests that measure latency (RequireKernelAlone) are not in the batch:
// they run last, one at a time, with nothing else running in the guest or
// on the host.

// batchEnv is set in the guest for the batch: only the tests that need the
// full kernel or their own machine, and may share it, run.
const batchEnv = "ROUTERD_VM_BATCH"

// fullKernel is what the VM lab's tests need between them; a host that has
// it all runs them itself.
var fullKernel = []string{"8021q", "pppoe", "sch_cake", "nf_flow_table", "wireguard"}

// batchRun is one test's part of the batch's output.
type batchRun struct {
	text     string // its lines, as the guest printed them
	result   string // "PASS", "FAIL", "SKIP", or "" when the batch ended during it
	finished bool
}

// vmBatch is the batch's results as they come.
type vmBatch struct {
	mu    sync.Mutex
	cond  *sync.Cond
	ended bool
	exit  string // how the batch's process ended, when it did
	runs  map[string]*batchRun
	vm    *vm.VM
	boot  time.Duration
}

func newBatch() *vmBatch {
	b := &vmBatch{runs: map[string]*batchRun{}}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// theBatch is this test binary's batch, nil if Main started none.
var theBatch *vmBatch

// Main runs a test binary's tests; call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }
//
// Where this kernel lacks what the VM lab's tests need, it starts them in
// the VM lab as a batch before the host's own tests begin (see above).
func Main(m *testing.M) int {
	flag.Parse()
	if batchWanted() {
		theBatch = newBatch()
		go theBatch.run()
	}
	return m.Run()
}

func batchWanted() bool {
	if InVM() || os.Geteuid() != 0 || flagValue("test.list") != "" || flagValue("test.run") == "^$" {
		return false
	}
	return len(missingModules(fullKernel)) > 0
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// run runs, in the guest, every test the host runs, with batchEnv set:
// there the tests that need no more than the host's kernel skip at once,
// as do those that must run alone.
func (b *vmBatch) run() {
	routerd, _, err := binaries()
	if err != nil {
		b.end(err.Error())
		return
	}
	v, boot, err := theVM(2)
	if err != nil {
		b.end("the VM lab did not boot: " + err.Error())
		return
	}
	b.mu.Lock()
	b.vm, b.boot = v, boot
	b.mu.Unlock()
	argv := []string{os.Args[0], "-test.count=1", "-test.v", "-test.run", flagValue("test.run")}
	for _, name := range []string{"test.skip", "test.short", "test.timeout"} {
		if s := flagValue(name); s != "" {
			argv = append(argv, "-"+name+"="+s)
		}
	}
	argv = append(argv, packageFlags()...)
	pr, pw := io.Pipe()
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		b.parse(pr)
	}()
	res, err := v.Run(vm.Request{Argv: argv, Env: guestEnv(routerd, batchEnv+"=1"), Dir: workDir()}, pw)
	pw.Close()
	<-parsed
	if err != nil {
		b.end(err.Error())
		return
	}
	b.end(fmt.Sprintf("exit %d %s", res.Code, res.Error))
}

// end records that the batch's process ended, and how.
func (b *vmBatch) end(exit string) {
	b.mu.Lock()
	b.ended, b.exit = true, exit
	b.cond.Broadcast()
	b.mu.Unlock()
}

// parse splits go test -v's output into the top-level tests' parts: from
// "=== RUN   TestX" to "--- PASS: TestX (…)" at the start of a line. A
// failed test's part goes on to the next test's start: a panic is told
// after the test's result.
func (b *vmBatch) parse(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var cur *batchRun
	var name string
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "=== RUN   "); ok && !strings.Contains(n, "/") {
			b.mu.Lock()
			if cur != nil {
				cur.finished = true // a failed one's
				b.cond.Broadcast()
			}
			name, cur = n, &batchRun{}
			b.runs[name] = cur
			b.mu.Unlock()
			continue
		}
		if cur == nil {
			continue
		}
		b.mu.Lock()
		cur.text += line + "\n"
		for _, result := range []string{"PASS", "FAIL", "SKIP"} {
			if strings.HasPrefix(line, "--- "+result+": "+name+" (") {
				cur.result = result
				if result != "FAIL" {
					cur.finished = true
					b.cond.Broadcast()
				}
			}
		}
		done := cur.finished
		b.mu.Unlock()
		if done {
			cur = nil
		}
	}
	io.Copy(io.Discard, r)
}

// wait returns name's run in the batch once it has finished or the batch
// has ended; false if the batch ended without running it.
func (b *vmBatch) wait(name string) (batchRun, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		r := b.runs[name]
		if r != nil && (r.finished || b.ended) {
			return *r, true
		}
		if r == nil && b.ended {
			return batchRun{}, false
		}
		b.cond.Wait()
	}
}

// fromBatch reports t's run in the batch as t's own, waiting for it if
// need be, and returns true; false if the batch did not run t (no batch,
// or it ended before t).
func fromBatch(t testing.TB, why string) bool {
	t.Helper()
	b := theBatch
	if b == nil {
		return false
	}
	r, ok := b.wait(t.Name())
	if !ok {
		return false
	}
	b.mu.Lock()
	exit, v, boot := b.exit, b.vm, b.boot
	b.mu.Unlock()
	t.Logf("%s: ran in the VM lab's batch (Linux %s under qemu TCG, %d CPU, booted in %s)",
		why, v.Kernel, v.CPUs, boot.Round(100*time.Millisecond))
	fmt.Fprint(t.Output(), r.text)
	switch r.result {
	case "PASS":
	case "SKIP":
		t.Skip("skipped in the VM lab")
	case "FAIL":
		t.Fatalf("failed in the VM lab; what the test said last:\n%s%s", testSaid(r.text, 15), panicked(r.text))
	default:
		t.Fatalf("the VM lab's batch ended during this test (%s); what the test said last:\n%s%s", exit, testSaid(r.text, 15), panicked(r.text))
	}
	return true
}

// panicked is the line where a test's output says it panicked, if it did.
func panicked(text string) string {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "panic: ") {
			return "\n" + strings.TrimSpace(line)
		}
	}
	return ""
}
