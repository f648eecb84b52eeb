// Command cicheck checks that every program the test suite ran comes from a
// Debian package listed in .ci/packages (or from an essential or required
// package, which every Debian system has). CI runs on a machine where a developer may have
// installed tools by hand; a user's fresh machine has only what .ci/packages
// installs, so a missing line there must fail here rather than there.
//
// The lab appends each program it runs to the file named by
// ROUTERD_PROGRAMS_LOG; `make test` sets it and runs this afterwards:
//
//	go run ./internal/cicheck -packages .ci/packages bin/programs.log
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// notFromDebian are programs that come from elsewhere on purpose.
var notFromDebian = map[string]string{
	"go": "the Go toolchain .ci/run puts on PATH",
}

func main() {
	pkgs := flag.String("packages", ".ci/packages", "the package list CI installs")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: cicheck [-packages FILE] PROGRAMS_LOG")
		os.Exit(2)
	}
	if err := run(*pkgs, flag.Arg(0), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cicheck:", err)
		os.Exit(1)
	}
}

func run(pkgsPath, logPath string, w io.Writer) error {
	listed, err := readList(pkgsPath)
	if err != nil {
		return err
	}
	programs, err := readList(logPath)
	if err != nil {
		return err
	}
	if len(programs) == 0 {
		return fmt.Errorf("%s lists no programs: was the suite run with %s set?", logPath, "ROUTERD_PROGRAMS_LOG")
	}
	var problems []string
	for _, prog := range programs {
		if why, ok := notFromDebian[prog]; ok {
			fmt.Fprintf(w, "%-22s %s\n", prog, why)
			continue
		}
		pkg, err := packageOf(prog)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", prog, err))
			continue
		}
		switch {
		case slices.Contains(listed, pkg):
			fmt.Fprintf(w, "%-22s %s\n", prog, pkg)
		case baseSystem(pkg):
			fmt.Fprintf(w, "%-22s %s (base system)\n", prog, pkg)
		default:
			problems = append(problems, fmt.Sprintf("%s: from package %s, which %s does not list", prog, pkg, pkgsPath))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d of %d programs would be missing on a fresh machine:\n  %s",
			len(problems), len(programs), strings.Join(problems, "\n  "))
	}
	fmt.Fprintf(w, "%d programs, each from a package CI installs\n", len(programs))
	return nil
}

// readList reads one word a line, skipping comments and blank lines, sorted
// and without duplicates.
func readList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseList(f)
}

func parseList(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	slices.Sort(out)
	return slices.Compact(out), sc.Err()
}

// packageOf finds the package owning prog as found on PATH. With merged
// /usr a package may have shipped /bin/x while PATH finds /usr/bin/x, so
// both spellings are asked, after symlinks (alternatives) are resolved.
func packageOf(prog string) (string, error) {
	p, err := exec.LookPath(prog)
	if err != nil {
		return "", fmt.Errorf("not on PATH")
	}
	candidates := []string{p}
	if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
		candidates = append(candidates, real)
	}
	for _, c := range slices.Clone(candidates) {
		if rest, ok := strings.CutPrefix(c, "/usr"); ok {
			candidates = append(candidates, rest)
		} else {
			candidates = append(candidates, "/usr"+c)
		}
	}
	for _, c := range candidates {
		out, err := exec.Command("dpkg", "-S", c).Output()
		if err != nil {
			continue
		}
		if pkg := ownerOf(string(out), c); pkg != "" {
			return pkg, nil
		}
	}
	return "", fmt.Errorf("%s belongs to no installed package", p)
}

// ownerOf parses dpkg -S output ("pkg[:arch][, pkg2]: /path"), skipping
// diversion lines.
func ownerOf(out, path string) string {
	for _, line := range strings.Split(out, "\n") {
		pkgs, p, ok := strings.Cut(line, ": ")
		if !ok || strings.TrimSpace(p) != path || strings.HasPrefix(line, "diversion by") {
			continue
		}
		first, _, _ := strings.Cut(pkgs, ",")
		name, _, _ := strings.Cut(strings.TrimSpace(first), ":")
		return name
	}
	return ""
}

// baseSystem reports whether every Debian system has pkg: it is essential
// or of priority required (what debootstrap --variant=minbase installs).
func baseSystem(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Essential} ${Priority}", pkg).Output()
	f := strings.Fields(string(out))
	return err == nil && len(f) == 2 && (f[0] == "yes" || f[1] == "required")
}
