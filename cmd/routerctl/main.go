// Command routerctl asks a running routerd what it is doing. See the README.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/ctl"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("routerctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctl.Usage) }
	socket := fs.String("socket", control.DefaultSocket, "routerd's control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return ctl.Run(ctx, control.NewClient(*socket), fs.Args(), os.Stdin, stdout, stderr)
}
