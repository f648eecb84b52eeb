package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// clientsRefresh is how often clients -f prints the table again.
const clientsRefresh = 2 * time.Second

// clientsCmd runs clients [-f] [--json]; ok is false for a usage error.
// With -f it prints the table (or a JSON line) every two seconds until
// interrupted.
func clientsCmd(ctx context.Context, c *control.Client, args []string, stdout, stderr io.Writer) (int, bool) {
	follow, asJSON := false, false
	for _, a := range args {
		switch a {
		case "-f", "--follow":
			follow = true
		case "--json", "-json":
			asJSON = true
		default:
			return 0, false
		}
	}
	for {
		var raw []byte
		var cl status.Clients
		if err := c.Do(ctx, control.Clients.Method, control.Clients.URL(nil), &cl, &raw); err != nil {
			if ctx.Err() != nil {
				return 0, true // interrupted while following
			}
			return exit(err, stderr), true
		}
		var err error
		switch {
		case asJSON:
			// One line per table, so that -f's output is JSON lines.
			var line bytes.Buffer
			if err = json.Compact(&line, raw); err == nil {
				_, err = fmt.Fprintf(stdout, "%s\n", line.Bytes())
			}
		default:
			if follow {
				fmt.Fprintf(stdout, "\n%s\n", time.Now().Format(time.TimeOnly))
			}
			err = cl.WriteText(stdout)
		}
		if err != nil || !follow {
			return exit(err, stderr), true
		}
		select {
		case <-ctx.Done():
			return 0, true
		case <-time.After(clientsRefresh):
		}
	}
}
