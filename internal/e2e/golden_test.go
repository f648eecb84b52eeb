package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, d)
	}
}

// diff is a small line diff: enough to read a golden mismatch.
func diff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	// longest common subsequence, fine for files of a few hundred lines
	n, m := len(w), len(g)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if w[i] == g[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && w[i] == g[j]:
			b.WriteString("  " + w[i] + "\n")
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			b.WriteString("+ " + g[j] + "\n")
			j++
		default:
			b.WriteString("- " + w[i] + "\n")
			i++
		}
	}
	return b.String()
}

var (
	reMAC      = regexp.MustCompile(`\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b`)
	rePeer     = regexp.MustCompile(`@if\d+`)
	reLL       = regexp.MustCompile(`fe80::[0-9a-f][0-9a-f:]*[0-9a-f]`)
	reSpaces   = regexp.MustCompile(` +`)
	fixedMACs  = regexp.MustCompile(`^02:42:ac:|^00:00:00:00:00:00$|^ff:ff:ff:ff:ff:ff$|^02:00:5e:`)
	reLinkNetn = regexp.MustCompile(` link-netns \S+`)
)

// normalize makes ip output comparable across runs: the test's prefix, the
// kernel's random veth MACs, peer ifindexes and link-local addresses vary.
func normalize(l *lab.Lab, s string) string {
	s = strings.ReplaceAll(s, l.Prefix, "P")
	s = rePeer.ReplaceAllString(s, "")
	s = reLinkNetn.ReplaceAllString(s, "")
	s = reMAC.ReplaceAllStringFunc(s, func(m string) string {
		if fixedMACs.MatchString(m) {
			return m
		}
		return "<random-mac>"
	})
	s = reLL.ReplaceAllString(s, "fe80::<ll>")
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		lines = append(lines, strings.TrimRight(reSpaces.ReplaceAllString(line, " "), " "))
	}
	return strings.Join(lines, "\n")
}

// snapshot is the golden view of one namespace.
func snapshot(t *testing.T, l *lab.Lab, ns *lab.NS) string {
	t.Helper()
	// An IPv6 address still in duplicate address detection has no local
	// route yet: wait it out, or a snapshot taken a moment early differs
	// from a later one without anything having changed.
	err := lab.Poll(10*time.Second, func() error {
		out, err := ns.Run("ip", "-6", "addr", "show", "tentative")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("tentative: %s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s settling: %v", ns.Name, err)
	}
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-br", "link"},
		{"ip", "-br", "addr"},
		{"ip", "rule"},
		{"ip", "-6", "rule"},
		{"ip", "route", "show", "table", "all"},
		{"ip", "-6", "route", "show", "table", "all"},
	} {
		out, err := ns.Run(args...)
		if err != nil {
			t.Fatal(err)
		}
		// Sorted: some kernel dumps follow random addresses (link-local).
		lines := strings.Split(strings.TrimRight(normalize(l, out), "\n"), "\n")
		sort.Strings(lines)
		b.WriteString("$ " + strings.Join(args, " ") + "\n" + strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}
