package dns

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/lifecycle"
)

// dotClient asks one DNS-over-TLS upstream (RFC 7858) by one path over a
// long-lived connection, pipelined: many questions in flight at once, the
// answers matched by ID and question as they come, in any order (RFC 7766
// §6.2.1.1). A broken connection fails what was in flight; the next
// question dials again.
type dotClient struct {
	up    Upstream
	mark  uint32
	roots *x509.CertPool
	hs    func(string)     // the handshake's outcome, for status
	run   *lifecycle.Group // the resolver's, for the connection's reader

	mu   sync.Mutex
	conn *dotConn
}

type dotConn struct {
	c   *tls.Conn
	wmu sync.Mutex // one message written at a time

	mu      sync.Mutex
	pending map[uint16]pendingQ
	err     error // set once the connection is broken
}

// dotIdle closes a connection nobody asked anything for this long, before
// the server does.
const dotIdle = 20 * time.Second

func (d *dotClient) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	// A connection the server closed while idle fails at once: one more
	// try on a fresh one.
	for attempt := 0; ; attempt++ {
		c, fresh, err := d.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.exchange(ctx, m)
		if err != nil && !fresh && attempt == 0 && errors.Is(err, errConnBroken) {
			continue
		}
		return resp, err
	}
}

// get returns the open connection, or dials one.
func (d *dotClient) get(ctx context.Context) (*dotConn, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil && d.conn.alive() {
		return d.conn, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	dialer := &net.Dialer{Control: markControl(d.mark)}
	raw, err := dialer.DialContext(ctx, "tcp", d.up.Addr.String())
	if err != nil {
		return nil, false, fmt.Errorf("connect: %w", err)
	}
	tc := tls.Client(raw, &tls.Config{ServerName: d.up.ServerName, RootCAs: d.roots, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		d.hs("failed: " + err.Error())
		return nil, false, fmt.Errorf("TLS handshake: %w", err)
	}
	st := tc.ConnectionState()
	d.hs(fmt.Sprintf("%s %s at %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), time.Now().Format(time.TimeOnly)))
	d.conn = &dotConn{c: tc, pending: map[uint16]pendingQ{}}
	conn := d.conn
	d.run.Go(func(context.Context) { conn.read() }) // ends when the connection fails or closes
	return d.conn, true, nil
}

func (d *dotClient) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.fail(net.ErrClosed)
	}
}

var errConnBroken = errors.New("connection broken")

func (c *dotConn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

func (c *dotConn) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	ch, errc := make(chan *dns.Msg, 1), make(chan error, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", errConnBroken, c.err)
	}
	id := register(c.pending, pendingQ{q: m.Question[0], ch: ch, err: errc})
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	m.Id = id // m is the forwarder's own copy
	wire, err := m.Pack()
	if err != nil {
		return nil, err
	}
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
	msg = append(msg, wire...)
	c.wmu.Lock()
	c.c.SetWriteDeadline(time.Now().Add(upstreamTimeout))
	_, err = c.c.Write(msg)
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return nil, fmt.Errorf("%w: %v", errConnBroken, err)
	}
	return await(ctx, ch, errc)
}

// read delivers answers until the connection breaks or idles out.
func (c *dotConn) read() {
	var hdr [2]byte
	buf := make([]byte, 65535)
	for {
		c.c.SetReadDeadline(time.Now().Add(dotIdle))
		if _, err := io.ReadFull(c.c, hdr[:]); err != nil {
			c.fail(err)
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c.c, buf[:n]); err != nil {
			c.fail(err)
			return
		}
		deliver(&c.mu, c.pending, buf[:n])
	}
}

// fail marks the connection broken, closes it and fails every question
// waiting on it.
func (c *dotConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	c.c.Close()
	for _, p := range c.pending {
		select {
		case p.err <- fmt.Errorf("%w: %v", errConnBroken, err):
		default:
		}
	}
}
