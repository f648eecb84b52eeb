package lab

import (
	"strings"
	"testing"
)

// TestTestSaid: a test failed in the VM lab shows its own messages, not
// the processes' output dumped under them.
func TestTestSaid(t *testing.T) {
	guest := `=== RUN   TestX
    x_test.go:25: lab: runs as root
    === RUN   TestX/a
        x_test.go:40: conntrack {Count:51}, want at least 52
        x_test.go:41: --- output of routerd
            routerd log line
    --- FAIL: TestX (3.00s)
`
	if got, want := testSaid(guest, 15), "x_test.go:40: conntrack {Count:51}, want at least 52"; got != want {
		t.Errorf("testSaid = %q, want %q", got, want)
	}
}

// TestBatchParse: the batch's output is split into the top-level tests'
// parts, with their results; a test the batch's end cut short has none,
// and one it never reached is not there.
func TestBatchParse(t *testing.T) {
	const out = `=== RUN   TestA
    a_test.go:10: lab: runs as root
=== RUN   TestA/sub
    --- PASS: TestA/sub (0.10s)
--- PASS: TestA (1.00s)
=== RUN   TestB
    b_test.go:20: the echo saw 10.0.0.1
--- FAIL: TestB (2.00s)
=== RUN   TestS
    s_test.go:5: needs no more than this kernel
--- SKIP: TestS (0.00s)
=== RUN   TestP
--- FAIL: TestP (0.01s)
panic: deliberate [recovered]
	panic: deliberate
=== RUN   TestC
    c_test.go:30: half-way
panic: boom
`
	b := newBatch()
	b.parse(strings.NewReader(out))
	b.end("exit 2")
	for name, want := range map[string]string{"TestA": "PASS", "TestB": "FAIL", "TestS": "SKIP", "TestP": "FAIL", "TestC": ""} {
		r, ok := b.wait(name)
		if !ok || r.result != want {
			t.Errorf("%s: %+v, %v; want result %q", name, r, ok, want)
		}
	}
	if r, _ := b.wait("TestA"); !strings.Contains(r.text, "--- PASS: TestA/sub") || strings.Contains(r.text, "TestB") {
		t.Errorf("TestA's part:\n%s", r.text)
	}
	if r, _ := b.wait("TestP"); panicked(r.text) != "\npanic: deliberate [recovered]" {
		t.Errorf("TestP's part, its panic not found:\n%s", r.text)
	}
	if r, _ := b.wait("TestC"); r.finished || !strings.Contains(r.text, "panic: boom") {
		t.Errorf("TestC's part: %+v", r)
	}
	if _, ok := b.wait("TestD"); ok {
		t.Error("TestD never ran in the batch, yet it has a part")
	}
}
