package dns

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// answerWith is an answer to name with n A records.
func answerWith(name string, n int) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Response = true
	for i := range n {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
			A: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))})
	}
	return m
}

// TestCacheMemoryBound: an answer of thousands of records (an attacker's
// domain, looked up from a browser) is not cached; answers of a size worth
// keeping are, but the cache's memory stays within its byte budget however
// many of them come, the oldest going first.
func TestCacheMemoryBound(t *testing.T) {
	c := newCache(10000)
	now := time.Now()
	huge := answerWith("huge.example", 4059)
	k := keyOf(Route{}, huge.Question[0], false)
	c.put(k, huge, now)
	if c.get(k, now) != nil {
		t.Fatal("an answer of 4059 records was cached")
	}
	var first cacheKey
	for i := range 2000 {
		m := answerWith(fmt.Sprintf("n%d.example", i), 200)
		k := keyOf(Route{}, m.Question[0], false)
		if i == 0 {
			first = k
		}
		c.put(k, m, now)
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d answers of 200 records the cache holds %d bytes, over its budget of %d", i+1, c.bytes, c.maxBytes)
		}
	}
	if c.get(first, now) != nil {
		t.Error("the oldest answer is still cached past the byte budget")
	}
	last := answerWith("n1999.example", 1)
	if c.get(keyOf(Route{}, last.Question[0], false), now) == nil {
		t.Error("the newest answer is not cached")
	}
	size, _, _ := c.stats()
	if size >= 2000 || size == 0 {
		t.Errorf("%d entries: want the budget, not the count of 10000, to bound them", size)
	}
}
