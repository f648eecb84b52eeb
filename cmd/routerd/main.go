// Command routerd is the home router appliance: it converges the machine to
// its config file and runs the LAN services. See the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/routerd/routerd/internal/logring"
	"github.com/routerd/routerd/router"
	"github.com/routerd/routerd/router/boot"
	"github.com/routerd/routerd/router/config"
)

func main() {
	// On the image routerd is /init: PID 1 runs the init mode, which runs
	// the appliance as its child.
	if os.Getpid() == 1 || (len(os.Args) > 1 && os.Args[1] == "--init") {
		self, err := os.Executable()
		if err != nil {
			self = "/init"
		}
		err = boot.Main(self)
		fmt.Fprintf(os.Stderr, "routerd: %v\n", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("routerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/routerd/routerd.toml", "config file")
	check := fs.Bool("check", false, "validate the config, print every problem and exit")
	teardown := fs.Bool("teardown", false, "remove everything routerd created for this config and exit")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Bool("init", false, "run as the image's init (PID 1 only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "routerd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *version {
		// "routerd VERSION built TIME": mkimage reads this into the
		// image's .routerd section, which the updater checks.
		fmt.Fprintf(stdout, "routerd %s built %s\n", router.Version, router.Built().UTC().Format(time.RFC3339))
		return 0
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "routerd: -log-level: %v\n", err)
		return 2
	}
	// The last lines are kept for routerctl logs (ssh ROUTER logs -f).
	logs := logring.New(2 << 20)
	log := slog.New(logring.NewHandler(logs, slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: lvl})))

	cfg, hash, err := config.Load(*path)
	if err == nil && !*teardown {
		// What this machine cannot do (CAKE on a kernel without it) is
		// refused like a config error: nothing applied.
		err = router.CheckMachine(cfg)
	}
	if *check {
		return printCheck(*path, cfg, err, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "routerd: %s: %v\n", *path, err)
		return 1
	}

	// The resolver's listeners wait for queries in recvmmsg system calls,
	// each holding one of the runtime's Ps while it waits. More Ps than
	// CPUs keep the rest of the appliance (upstream answers, DHCP, the
	// control API) from waiting for the runtime to take them back
	// (BenchmarkDNS: 13% more cache misses per second on two cores). A
	// GOMAXPROCS in the environment wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *teardown {
		if err := router.Teardown(ctx, cfg, log); err != nil {
			fmt.Fprintf(stderr, "routerd: teardown: %v\n", err)
			return 1
		}
		return 0
	}

	sup := router.New(*path, cfg, hash, log)
	sup.Logs = logs
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sup.ReloadOn(hup)
	if err := sup.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "routerd: %v\n", err)
		return 1
	}
	return 0
}

// printCheck prints every config error and warning, one per line.
func printCheck(path string, cfg *config.Config, err error, stdout, stderr io.Writer) int {
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			fmt.Fprintf(stderr, "routerd: %v\n", err)
			return 1
		}
		for _, e := range errs {
			fmt.Fprintf(stderr, "%s: %v\n", path, e)
		}
		fmt.Fprintf(stderr, "%s: %d error(s); nothing applied\n", path, len(errs))
		return 1
	}
	for _, w := range cfg.FileWarnings() {
		fmt.Fprintf(stderr, "%s: warning: %v\n", path, w)
	}
	fmt.Fprintf(stdout, "%s: OK\n", path)
	return 0
}
