package dns

import (
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// 0x20 (draft-vixie-dnsext-dns0x20): the question goes upstream with the
// case of its letters chosen at random, and an answer must carry it back
// exactly: a forger who guesses the port and the ID must also guess one
// bit per letter. Upstreams that do not keep the case (a few middleboxes
// and old servers) are found out and asked in the case given.

// caseState learns whether an upstream keeps the question's case. Until an
// answer has shown that it does, an answer with another case is taken (and
// counted); after caseStrikes of those without one that kept it, 0x20 is
// off for the upstream. Once one answer has kept the case, every answer
// must.
type caseState struct {
	mu      sync.Mutex
	keeps   bool // an answer kept the case
	strikes int  // answers that did not, while keeps is false
	off     bool
}

const caseStrikes = 3

// use reports whether questions to the upstream are sent in mixed case.
func (c *caseState) use() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.off
}

// check reports whether an answer whose question reads got, to one sent as
// sent, is acceptable, and learns from it.
func (c *caseState) check(sent, got string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case got == sent:
		c.keeps = true
		return true
	case c.keeps:
		return false
	default:
		if c.strikes++; c.strikes >= caseStrikes {
			c.off = true
		}
		return true
	}
}

// mixCase returns name with each letter's case chosen at random.
func mixCase(name string) string {
	b := []byte(name)
	bits := rand.Uint64()
	for i, ch := range b {
		if i%64 == 0 && i > 0 {
			bits = rand.Uint64()
		}
		lower := ch | 0x20
		if lower >= 'a' && lower <= 'z' {
			if bits&1 == 1 {
				b[i] = lower &^ 0x20
			} else {
				b[i] = lower
			}
		}
		bits >>= 1
	}
	return string(b)
}

// restoreCase gives an answer back the name as it was asked: in the
// question, and as the owner of the records that have it.
func restoreCase(m *dns.Msg, sent, asked string) {
	if sent == asked {
		return
	}
	m.Question[0].Name = asked
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); strings.EqualFold(h.Name, sent) {
				h.Name = asked
			}
		}
	}
}
