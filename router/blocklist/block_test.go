package blocklist

import (
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
	f.Fuzz(func(t *testing.T, list, format string) {
		p, err := ParseBlock(strings.NewReader(list), format, 1000)
		if err == nil && p.Entries < 0 {
			t.Fatal("negative entries")
		}
	})
}
