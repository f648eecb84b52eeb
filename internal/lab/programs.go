package lab

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
)

// ProgramsLogEnv names a file that every program the lab runs (or requires)
// is appended to, one name a line. `make test` sets it and then runs
// internal/cicheck, which checks that each comes from a package listed in
// .ci/packages: a fresh machine has only those.
const ProgramsLogEnv = "ROUTERD_PROGRAMS_LOG"

var programsMu sync.Mutex

// record notes the programs argv runs: argv[0] and, through ip netns exec
// and nsenter, the program they start. Paths are the test's own binaries
// (routerd, routerctl, the test binary) and are not recorded.
func record(argv ...string) {
	path := os.Getenv(ProgramsLogEnv)
	if path == "" || len(argv) == 0 {
		return
	}
	var names []string
	for len(argv) > 0 {
		names = append(names, argv[0])
		switch {
		case argv[0] == "ip" && len(argv) > 4 && argv[1] == "netns" && argv[2] == "exec":
			argv = argv[4:]
		case argv[0] == "nsenter":
			i := slices.Index(argv, "--")
			if i < 0 {
				return
			}
			argv = argv[i+1:]
		default:
			argv = nil
		}
	}
	var b strings.Builder
	for _, n := range names {
		if n != "" && !strings.Contains(n, "/") {
			b.WriteString(n + "\n")
		}
	}
	programsMu.Lock()
	defer programsMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	f.WriteString(b.String())
	f.Close()
}

// Command is exec.CommandContext that records the program it runs; tests
// outside the lab's namespaces use it for the tools they run on the host.
func Command(ctx context.Context, argv ...string) *exec.Cmd {
	record(argv...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}
