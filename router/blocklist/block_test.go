package blocklist

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseBlock(t *testing.T) {
	for _, tc := range []struct {
		name, format, list string
		wantFormat         string
		blocked, passed    []string
		excepted           []string
		entries, rejected  int
	}{
		{"hosts", "auto", "# StevenBlack\n127.0.0.1 localhost\n0.0.0.0 0.0.0.0\n0.0.0.0 ads.example tracker.example # two\n::1 ip6-localhost\n0.0.0.0 bad_name!\n",
			"hosts", []string{"ads.example", "x.tracker.example."}, []string{"example", "localhost"}, nil, 2, 1},
		{"adblock", "auto", "[Adblock Plus 2.0]\n! comment\n||ads.example^\n||cdn.example^$important\n||third.example^$third-party\n@@||ok.ads.example^\nexample.com##.banner\n||bad/path^\n/regex/\n",
			"adblock", []string{"ads.example", "cdn.example"}, []string{"third.example"}, []string{"ok.ads.example"}, 3, 1},
		{"domains", "auto", "ads.example\n# comment\ntracker.example.\nnot a domain\n",
			"domains", []string{"ads.example", "tracker.example"}, []string{"example"}, nil, 2, 1},
	} {
		p, err := ParseBlock(strings.NewReader(tc.list), tc.format, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.Format != tc.wantFormat || p.Entries != tc.entries || p.Rejected != tc.rejected {
			t.Errorf("%s: format %s, %d entries, %d rejected (%q); want %s, %d, %d", tc.name, p.Format, p.Entries, p.Rejected, p.Samples,
				tc.wantFormat, tc.entries, tc.rejected)
		}
		for _, n := range tc.blocked {
			if _, ok := p.Names.Match([]byte(n)); !ok {
				t.Errorf("%s: %s not listed", tc.name, n)
			}
		}
		for _, n := range tc.passed {
			if _, ok := p.Names.Match([]byte(n)); ok {
				t.Errorf("%s: %s listed", tc.name, n)
			}
		}
		for _, n := range tc.excepted {
			if !p.Except.Has([]byte(n)) {
				t.Errorf("%s: %s not an exception", tc.name, n)
			}
		}
	}
	if _, err := ParseBlock(strings.NewReader("a.example\nb.example\nc.example\n"), "domains", 2); err == nil {
		t.Error("a list over max_entries was accepted")
	}
}

func FuzzParseBlock(f *testing.F) {
	f.Add("0.0.0.0 ads.example\n", "auto")
	f.Add("||ads.example^\n@@||x.ads.example^$important\n", "adblock")
	f.Add("ads.example\n", "domains")
	f.Add("0.0.0.0 Ads.Example *.x.example. 1.2.3.4 localhost LocalHost\n# c\n::1 a.example # t\n1.2.3.4\n", "hosts")
	f.Add("ads.example\n*.Tracker.example.\n10.0.0.1\n a .example\n-x.example\n", "domains")
	f.Add("0.0.0.0\u00a0ads.example\n", "hosts")
	f.Fuzz(func(t *testing.T, list, format string) {
		p, err := ParseBlock(strings.NewReader(list), format, 1000)
		if err == nil && p.Entries < 0 {
			t.Fatal("negative entries")
		}
		// The bytes path reads every line as the string path does.
		want, werr := parseBlock(strings.NewReader(list), format, 1000, (*BlockParsed).lineSlow)
		if (err == nil) != (werr == nil) {
			t.Fatalf("error %v, the string path's %v", err, werr)
		}
		if err != nil {
			return
		}
		gb, _ := p.Names.MarshalBinary()
		wb, _ := want.Names.MarshalBinary()
		if p.Format != want.Format || p.Lines != want.Lines || p.Entries != want.Entries || p.Rejected != want.Rejected ||
			!slices.Equal(p.Samples, want.Samples) || !bytes.Equal(gb, wb) {
			t.Fatalf("parsed %+v, the string path %+v", p, want)
		}
	})
}

// BenchmarkParseBlock: a 200,000-name hosts list, as BenchmarkDNSTail
// refreshes it.
func BenchmarkParseBlock(b *testing.B) {
	var sb strings.Builder
	for i := range 200_000 {
		fmt.Fprintf(&sb, "0.0.0.0 ad%d.block.example\n", i)
	}
	list := sb.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(list)))
	for b.Loop() {
		if _, err := ParseBlock(strings.NewReader(list), "hosts", 0); err != nil {
			b.Fatal(err)
		}
	}
}
