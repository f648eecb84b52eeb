package blocklist

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/routerd/routerd/internal/iprange"
	"github.com/routerd/routerd/internal/via"
)

func r4(t *testing.T, lo, hi string) iprange.R4 {
	t.Helper()
	return iprange.R4{Lo: iprange.V4(netip.MustParseAddr(lo)), Hi: iprange.V4(netip.MustParseAddr(hi))}
}

func pfx4(t *testing.T, s string) iprange.R4 {
	t.Helper()
	return iprange.R4Of(netip.MustParsePrefix(s))
}

func TestParseLines(t *testing.T) {
	in := `# a comment
198.51.100.0/24
198.51.101.0/24   # adjacent: merges with the one above
203.0.113.7
203.0.113.7
192.0.2.10-192.0.2.20, 192.0.2.21
2001:db8:1::/48
2001:db8:1:ffff::/64
not-an-address
10.1.2.3
300.1.1.1/8
`
	p, err := Parse(strings.NewReader(in), "lines", NewProtected(Bogons...))
	if err != nil {
		t.Fatal(err)
	}
	wantV4 := []iprange.R4{r4(t, "192.0.2.10", "192.0.2.21"), pfx4(t, "198.51.100.0/23"), pfx4(t, "203.0.113.7/32")}
	if !reflect.DeepEqual(p.V4, wantV4) {
		t.Errorf("V4:\ngot  %v\nwant %v", p.V4, wantV4)
	}
	wantV6 := []iprange.R6{iprange.R6Of(netip.MustParsePrefix("2001:db8:1::/48"))}
	if !reflect.DeepEqual(p.V6, wantV6) {
		t.Errorf("V6:\ngot  %v\nwant %v", p.V6, wantV6)
	}
	if got, want := p.Lines, 10; got != want {
		t.Errorf("Lines = %d, want %d", got, want)
	}
	if got, want := p.Rejected, 2; got != want {
		t.Errorf("Rejected = %d, want %d (samples %q)", got, want, p.Samples)
	}
	if got, want := p.Samples, []string{"not-an-address", "300.1.1.1/8"}; !slices.Equal(got, want) {
		t.Errorf("Samples = %q, want %q", got, want)
	}
	if got, want := p.Refused, 1; got != want {
		t.Errorf("Refused = %d, want %d", got, want)
	}
	if got, want := p.RefusedSamples, []string{"10.1.2.3"}; !slices.Equal(got, want) {
		t.Errorf("RefusedSamples = %q, want %q", got, want)
	}
}

// The registry's CSV as the rublacklist API serves it: a date line, then
// "ip;domain;url;org;number;date" with several addresses joined by '|'.
func TestParseRKNCSV(t *testing.T) {
	in := "Updated: 2026-11-20 10:00:00 +0000\n" +
		"198.51.100.1 | 198.51.100.2;blocked.example;http://blocked.example/;Court;27-31-2018/Id2971-18;2018-04-16\n" +
		"203.0.113.0/24;;;RKN;1-2;2019-01-01\n" +
		";*.wild.example;https://x.wild.example/a;Court;3;2020-01-01\n" +
		"2001:db8:5::1;;;;;\n" +
		"garbage;;;;;\n" +
		"192.168.1.1;;;;;\n"
	p, err := Parse(strings.NewReader(in), "auto", NewProtected(Bogons...))
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != "rkn-csv" {
		t.Errorf("detected %q, want rkn-csv", p.Format)
	}
	wantV4 := []iprange.R4{r4(t, "198.51.100.1", "198.51.100.2"), pfx4(t, "203.0.113.0/24")}
	if !reflect.DeepEqual(p.V4, wantV4) {
		t.Errorf("V4:\ngot  %v\nwant %v", p.V4, wantV4)
	}
	if len(p.V6) != 1 {
		t.Errorf("V6 = %v, want one address", p.V6)
	}
	slices.Sort(p.Domains)
	if got, want := p.Domains, []string{"blocked.example", "wild.example"}; !slices.Equal(got, want) {
		t.Errorf("Domains = %q, want %q", got, want)
	}
	if got, want := p.Lines, 6; got != want {
		t.Errorf("Lines = %d, want %d (the Updated line is not one)", got, want)
	}
	if got, want := p.Rejected, 1; got != want {
		t.Errorf("Rejected = %d, want %d", got, want)
	}
	if got, want := p.Refused, 1; got != want {
		t.Errorf("Refused = %d, want %d", got, want)
	}
}

func TestParseDomains(t *testing.T) {
	in := "# blocked names\nBlocked.Example.\n*.cdn.example\nfoo\n-bad-.example\n1.2.3.4\nok_name.example # note\n"
	p, err := Parse(strings.NewReader(in), "auto", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != "domains" {
		t.Errorf("detected %q, want domains", p.Format)
	}
	slices.Sort(p.Domains)
	if got, want := p.Domains, []string{"blocked.example", "cdn.example", "ok_name.example"}; !slices.Equal(got, want) {
		t.Errorf("Domains = %q, want %q", got, want)
	}
	if got, want := p.Rejected, 3; got != want {
		t.Errorf("Rejected = %d, want %d (samples %q)", got, want, p.Samples)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"# x\n1.2.3.4\n5.6.7.0/24\n", "lines"},
		{"1.2.3.4-1.2.3.9\n", "lines"},
		{"Updated: now\n1.2.3.4;a.example;;;;\n", "rkn-csv"},
		{"a.example\nb.example\n", "domains"},
		{"", "lines"},
	} {
		if got := detect([]byte(tc.in)); got != tc.want {
			t.Errorf("detect(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A protected network refuses every entry that overlaps it, including a
// wide one that merely contains it: routing 0.0.0.0/1 through the tunnel
// would take the LAN with it.
func TestProtectedRefusesWideEntries(t *testing.T) {
	prot := NewProtected(netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("198.51.100.7/32"))
	in := "0.0.0.0/0\n128.0.0.0/1\n198.51.100.0/24\n198.51.100.8\n192.168.0.0-192.168.3.255\n"
	p, err := Parse(strings.NewReader(in), "lines", prot)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Refused, 4; got != want {
		t.Errorf("Refused = %d, want %d (%q)", got, want, p.RefusedSamples)
	}
	if want := []iprange.R4{pfx4(t, "198.51.100.8/32")}; !reflect.DeepEqual(p.V4, want) {
		t.Errorf("V4 = %v, want %v", p.V4, want)
	}
}

func TestParseLongLine(t *testing.T) {
	in := strings.Repeat("x", 200_000) + "\n198.51.100.1\n"
	p, err := Parse(strings.NewReader(in), "lines", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rejected != 1 || len(p.V4) != 1 {
		t.Errorf("got rejected %d, v4 %v; want 1 rejected and the address", p.Rejected, p.V4)
	}
	if len(p.Samples[0]) > 100 {
		t.Errorf("sample not clipped: %d bytes", len(p.Samples[0]))
	}
}

func TestDomainIndexMatch(t *testing.T) {
	idx := &domainIndex{by: map[string]domainEntry{
		"blocked.example": {via: via.VPN},
		"bank.example":    {via: via.WAN},
	}}
	for _, tc := range []struct {
		name string
		via  via.Path
	}{
		{"blocked.example.", via.VPN},
		{"WWW.Blocked.Example.", via.VPN},
		{"a.b.c.blocked.example", via.VPN},
		{"notblocked.example.", 0},
		{"example.", 0},
		{"online.bank.example.", via.WAN},
	} {
		e, ok := idx.match(tc.name)
		if got := map[bool]via.Path{true: e.via, false: 0}[ok]; got != tc.via {
			t.Errorf("match(%q) = %v, want %v", tc.name, got, tc.via)
		}
	}
}

// FuzzParse: no input crashes the parser, and what it accepts is merged,
// ordered and never overlaps a protected network.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"198.51.100.0/24\n# c\n1.2.3.4-1.2.3.9\n",
		"Updated: x\n1.2.3.4|5.6.7.8;a.example;u;o;n;d\n",
		"*.a.example\nb.example\n",
		"::ffff:1.2.3.4/120\n2001:db8::-2001:db8::ff\n",
		"10.0.0.0/8\n0.0.0.0/0\n::/0\n",
	} {
		f.Add(s, "auto")
	}
	prot := NewProtected(Bogons...)
	f.Fuzz(func(t *testing.T, in, format string) {
		switch format {
		case "auto", "lines", "rkn-csv", "domains":
		default:
			format = "auto"
		}
		p, err := Parse(strings.NewReader(in), format, prot)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range p.V4 {
			if r.Hi < r.Lo || (i > 0 && r.Lo <= p.V4[i-1].Hi+1 && p.V4[i-1].Hi != ^uint32(0)) {
				t.Fatalf("v4 not merged: %v", p.V4)
			}
			if iprange.Overlaps4(r, prot.V4) {
				t.Fatalf("v4 %v overlaps a protected network", r)
			}
		}
		for _, r := range p.V6 {
			if iprange.Overlaps6(r, prot.V6) {
				t.Fatalf("v6 %v overlaps a protected network", r)
			}
		}
		if p.Rejected > p.Lines+strings.Count(in, ",")+strings.Count(in, " ")+strings.Count(in, "\t") {
			t.Fatalf("rejected %d of %d lines", p.Rejected, p.Lines)
		}
	})
}

// BenchmarkDomainMatch: the resolver's hook on a 500k-domain index, for a
// name that is not listed (the common case: every label is looked up).
func BenchmarkDomainMatch(b *testing.B) {
	idx := &domainIndex{by: map[string]domainEntry{}}
	for i := range 500_000 {
		idx.by[fmt.Sprintf("site%d.example%d.com", i, i%1000)] = domainEntry{via: via.VPN}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := idx.match("www.images.cdn.notlisted.example.org."); ok {
			b.Fatal("matched")
		}
	}
}
