package dnssec

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// FuzzValidate: whatever an upstream sends for a question (signatures cut,
// records changed, sections shuffled, names and types swapped) is judged
// without a panic, and nothing that the zones did not sign is ever judged
// secure: a secure A record is one the hierarchy holds, or the wildcard's
// expansion.
func FuzzValidate(f *testing.F) {
	a, v := hierarchy(f)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"www.secure.test.", dns.TypeA}, {"alias.secure.test.", dns.TypeA}, {"x.wild.secure.test.", dns.TypeA},
		{"nothere.secure.test.", dns.TypeA}, {"www.secure.test.", dns.TypeAAAA}, {"www.insecure.test.", dns.TypeA},
		{"www.broken.test.", dns.TypeA}, {"ent.secure.test.", dns.TypeA}, {"insecure.test.", dns.TypeDS},
	} {
		b, err := a.answer(dns.Question{Name: q.name, Qtype: q.qtype, Qclass: dns.ClassINET}).Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	real := map[string]bool{}
	for _, z := range a.zones {
		if z.name == "broken.test." {
			continue
		}
		for _, r := range z.records {
			if x, ok := r.(*dns.A); ok {
				real[canonical(x.Hdr.Name)+" "+x.A.String()] = true
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil || len(m.Question) != 1 {
			return
		}
		q := m.Question[0]
		if _, ok := dns.IsDomainName(q.Name); !ok {
			return
		}
		res := v.Validate(context.Background(), a.ask, q, m)
		if res.Security != Secure {
			return
		}
		for _, r := range m.Answer {
			x, ok := r.(*dns.A)
			if !ok {
				continue
			}
			name := canonical(x.Hdr.Name)
			wild := isSubdomain("wild.secure.test.", name) && name != "wild.secure.test." && x.A.String() == "192.0.2.9"
			if !real[name+" "+x.A.String()] && !wild {
				t.Fatalf("%s A %s judged secure: %v", name, x.A, m)
			}
		}
	})
}
