package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRunRemote: over SSH, update reads standard input only and
// --allow-downgrade is the console's; both are refused before anything is
// opened or sent (the client here has no server: reaching it would fail
// differently).
func TestRunRemote(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"update", "/etc/shadow"}, "standard input"},
		{[]string{"update", "--reboot-at", "never", "/etc/shadow"}, "standard input"},
		{[]string{"update", "--allow-downgrade"}, "for the console"},
	} {
		var stdout, stderr bytes.Buffer
		code := RunRemote(context.Background(), nil, c.args, strings.NewReader(""), &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "sha256") {
			t.Errorf("%q: exit %d, %q; want 1 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	for _, args := range [][]string{{"update"}, {"update", "--sha256", "ab", "--reboot-at", "now"}, {"status"}} {
		if err := remoteAllowed(args); err != nil {
			t.Errorf("%q refused: %v", args, err)
		}
	}
}
