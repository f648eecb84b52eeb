package lab

import "testing"

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
