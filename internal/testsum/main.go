// Command testsum reads `go test -json` on its standard input and writes
// what `go test` would have written without -json (each package's result
// line; a failed test's whole output), then a count of the tests that
// passed: how many ran without root and how many in a lab that needs it
// (the lab's Require logs lab.RootMarker into those tests' output).
// `make test` pipes the suite through it:
//
//	go test -json ./... | go run ./internal/testsum
//
// It exits 1 if any test or package failed, or if it read no package.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/routerd/routerd/internal/lab/marker"
)

// event is test2json's record (go doc test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type summary struct {
	packages, failed int
	passed, root     int // top-level tests
	skipped          int
}

func main() {
	s, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(1)
	}
	if s.failed > 0 || s.packages == 0 {
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) (summary, error) {
	var s summary
	output := map[string]*strings.Builder{} // package + test: its lines so far
	rooted := map[string]bool{}             // package + test: it logged the marker
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(out, sc.Text()) // not JSON: the go command's own words
			continue
		}
		top, _, _ := strings.Cut(e.Test, "/")
		key := e.Package + " " + top // subtests' lines go with their test's, as go test prints them
		switch e.Action {
		case "output", "build-output":
			if e.Test == "" {
				if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
					fmt.Fprint(out, e.Output)
				}
				continue
			}
			if strings.Contains(e.Output, marker.Root) {
				rooted[key] = true
			}
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			b.WriteString(e.Output)
		case "fail", "build-fail", "pass", "skip":
			if e.Test == "" {
				s.packages++
				if e.Action == "fail" || e.Action == "build-fail" {
					s.failed++
				}
				continue
			}
			if e.Test != top {
				continue // a subtest: its test's end decides
			}
			switch e.Action {
			case "fail":
				if b := output[key]; b != nil {
					fmt.Fprint(out, b.String())
				}
			case "skip":
				s.skipped++
			case "pass":
				s.passed++
				if rooted[key] {
					s.root++
				}
			}
			delete(output, key)
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	fmt.Fprintf(out, "tests passed: %d, of which %d without root and %d in the lab as root (namespaces or the VM); %d skipped\n",
		s.passed, s.passed-s.root, s.root, s.skipped)
	return s, nil
}
