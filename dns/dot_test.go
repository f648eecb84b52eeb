package dns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dotServer is a DNS-over-TLS server on loopback with a certificate for
// "dot.test", counting connections and questions.
type dotServer struct {
	addr        netip.AddrPort
	roots       *x509.CertPool
	conns, seen atomic.Int64
	stop        func()
}

func startDoT(t *testing.T) *dotServer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dot.test"}, DNSNames: []string{"dot.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	d := &dotServer{roots: x509.NewCertPool()}
	d.roots.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.addr = netip.MustParseAddrPort(ln.Addr().String())
	tl := tls.NewListener(countingListener{ln, &d.conns}, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	srv := &dns.Server{Listener: tl, Net: "tcp-tls", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		d.seen.Add(1)
		m := new(dns.Msg)
		m.SetReply(req)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 53)}}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	d.stop = func() { srv.Shutdown() }
	t.Cleanup(d.stop)
	return d
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestDoT: answers come over TLS, many questions share one connection,
// the status says so; a certificate for another name gets no answer and
// the status says why; with the DoT upstream down nothing goes to the
// ISP's plain servers.
func TestDoT(t *testing.T) {
	d := startDoT(t)
	isp := startUpstream(t)
	r := testResolverWith(Config{Upstreams: []Upstream{{Addr: d.addr, TLS: true, ServerName: "dot.test"}}, TLSRoots: d.roots})
	r.fwd.isp = []Upstream{{Addr: isp.addr}} // as setISP does, on the fake's port
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			resp := ask(t, r, "n"+string(rune('a'+i))+".example", dns.TypeA)
			if len(resp.Answer) != 1 {
				t.Errorf("answer %v", resp)
			}
		})
	}
	wg.Wait()
	if got := d.conns.Load(); got != 1 {
		t.Errorf("%d TLS connections for 20 questions, want 1 (reused, pipelined)", got)
	}
	st := r.Status().Upstreams
	if len(st) != 1 || st[0].Protocol != "tls" || !strings.HasPrefix(st[0].Handshake, "TLS 1.3") || st[0].Answered != 20 {
		t.Errorf("status %+v", st)
	}

	wrong := testResolverWith(Config{Upstreams: []Upstream{{Addr: d.addr, TLS: true, ServerName: "other.test"}}, TLSRoots: d.roots})
	if resp := ask(t, wrong, "x.example", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("a certificate for another name: %v, want SERVFAIL", resp)
	}
	if st := wrong.Status().Upstreams; !strings.Contains(st[0].Handshake, "certificate is valid for dot.test, not other.test") {
		t.Errorf("handshake status %q, want the certificate's names", st[0].Handshake)
	}

	d.stop()
	r.fwd.close()
	before := isp.asked.Load()
	if resp := ask(t, r, "down.example", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("with the DoT upstream down: %v, want SERVFAIL", resp)
	}
	if isp.asked.Load() != before {
		t.Error("a question went to the ISP's server in plaintext")
	}
}
