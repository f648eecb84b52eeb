// Package admin is SSH management: an SSH server (golang.org/x/crypto/ssh)
// that runs routerctl commands and nothing else. Public keys only, any
// user name (the key decides), exec requests only: no shell, no pty, no
// forwarding of any kind, no subsystems. It listens on the interfaces it
// is given and on loopback, bound to each device, so that it cannot be
// reached from any other (the WAN, the VPN, transit).
//
// It owns its sockets and the host key file; what a command does is the
// Exec function's business.
package admin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/lograte"
	"github.com/routerd/routerd/router/status"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// Config is what the server needs.
type Config struct {
	Ifaces      []string // devices to listen on besides loopback
	Port        uint16
	HostKeyPath string
	Keys        []ssh.PublicKey
	// KeyFrom restricts keys (by SHA256 fingerprint) to source addresses:
	// authorized_keys' from= option.
	KeyFrom map[string][]netip.Prefix
	// Exec runs one command line (split into words, a leading "routerctl"
	// removed) and returns its exit code.
	Exec func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
	// OnAuthFailure hears of each connection that ended without
	// authenticating after trying to (an agent's offer of several keys is
	// one failure, not one per key), by source; OnAuthSuccess of each
	// login.
	OnAuthFailure func(netip.Addr)
	OnAuthSuccess func(netip.Addr)
	Log           *slog.Logger
}

// Limits. A home router has one or two admins: a few sessions are plenty,
// and more only cost memory an attacker would like to use.
//
// Connections still authenticating are capped apart from logged-in ones,
// and per source, so that silent connections (a scanner, a hung client)
// cannot keep an admin from logging in.
const (
	maxConns            = 8 // logged in
	maxPreauth          = 8 // authenticating, in all
	maxPreauthPerSource = 3
	authTimeout         = 10 * time.Second
	idleTimeout         = 10 * time.Minute
	maxAuth             = 6
)

// Server is the SSH server.
type Server struct {
	cfg     Config
	ssh     *ssh.ServerConfig
	hostKey ssh.Signer
	run     lifecycle.Group

	mu        sync.Mutex
	listeners map[string]net.Listener // by device
	errs      map[string]error

	warn         *lograte.Limiter   // failures are warned of once a minute
	preauth      map[netip.Addr]int // connections authenticating, by source
	preauthAll   int
	tried        map[string]bool // connections (by remote address) that tried a key or password
	conns        atomic.Int64
	sessions     atomic.Int64
	commands     atomic.Int64
	authFailures atomic.Int64
}

// New loads (or creates) the host key and prepares the server.
func New(cfg Config) (*Server, error) {
	signer, err := LoadOrCreateHostKey(cfg.HostKeyPath)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, hostKey: signer, listeners: map[string]net.Listener{}, errs: map[string]error{},
		preauth: map[netip.Addr]int{}, tried: map[string]bool{}, warn: lograte.New(time.Minute)}
	s.ssh = &ssh.ServerConfig{
		MaxAuthTries:      maxAuth,
		ServerVersion:     "SSH-2.0-routerd",
		PublicKeyCallback: s.authorize,
		AuthLogCallback:   s.authLog,
	}
	s.ssh.AddHostKey(signer)
	return s, nil
}

// Fingerprint is the host key's fingerprint as ssh-keygen -lf prints it:
// what a person compares on first connection.
func (s *Server) Fingerprint() string { return Fingerprint(s.hostKey.PublicKey()) }

// Fingerprint formats k like ssh-keygen -l: "256 SHA256:... (ED25519)".
func Fingerprint(k ssh.PublicKey) string {
	bits, typ := 0, strings.ToUpper(strings.TrimPrefix(k.Type(), "ssh-"))
	if cpk, ok := k.(ssh.CryptoPublicKey); ok {
		if _, ok := cpk.CryptoPublicKey().(ed25519.PublicKey); ok {
			bits = 256
		}
	}
	return fmt.Sprintf("%d %s (%s)", bits, ssh.FingerprintSHA256(k), typ)
}

// LoadOrCreateHostKey reads an OpenSSH private key, or makes an ed25519
// one (mode 0600) the first time.
func LoadOrCreateHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "routerd host key")
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, fmt.Errorf("write SSH host key: %w", err)
		}
		return ssh.NewSignerFromKey(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("read SSH host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("SSH host key %s: %w", path, err)
	}
	return signer, nil
}

// authLog notes that a connection tried to authenticate (not the client's
// opening "none" probe): if it ends without succeeding, that is one
// failure (serve).
func (s *Server) authLog(meta ssh.ConnMetadata, method string, err error) {
	if err == nil || method == "none" {
		return
	}
	s.mu.Lock()
	s.tried[meta.RemoteAddr().String()] = true
	s.mu.Unlock()
}

// remoteAddr is a connection's source address.
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// admit reserves a place for a new connection from a, still to
// authenticate; release gives it back.
func (s *Server) admit(a netip.Addr) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.preauthAll >= maxPreauth || s.preauth[a] >= maxPreauthPerSource {
		return nil, false
	}
	s.preauthAll++
	s.preauth[a]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.preauthAll--
			if s.preauth[a]--; s.preauth[a] <= 0 {
				delete(s.preauth, a)
			}
		})
	}, true
}

func (s *Server) authorize(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	wire := key.Marshal()
	for _, k := range s.cfg.Keys {
		if !bytes.Equal(k.Marshal(), wire) {
			continue
		}
		fp := ssh.FingerprintSHA256(key)
		if from, ok := s.cfg.KeyFrom[fp]; ok {
			a := netip.Addr{}
			if ta, ok := meta.RemoteAddr().(*net.TCPAddr); ok {
				a = ta.AddrPort().Addr().Unmap()
			}
			if !slices.ContainsFunc(from, func(p netip.Prefix) bool { return p.Contains(a) }) {
				return nil, fmt.Errorf("key %s not authorized from %s (from=)", fp, a)
			}
		}
		return &ssh.Permissions{Extensions: map[string]string{"key": fp}}, nil
	}
	return nil, errors.New("key not authorized")
}

// Start listens on loopback and each interface, retrying those whose
// device is not there yet, until Stop.
func (s *Server) Start(ctx context.Context) error {
	s.run.Start(ctx)
	s.listenAll() // a started server listens wherever it can already
	s.run.Go(func(ctx context.Context) {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				s.closeAll()
				return
			case <-tick.C:
				s.listenAll()
			}
		}
	})
	return nil
}

// Stop closes the listeners and ends the sessions' goroutines.
func (s *Server) Stop(ctx context.Context) error {
	err := s.run.Stop(ctx)
	s.closeAll()
	return err
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for dev, l := range s.listeners {
		l.Close()
		delete(s.listeners, dev)
	}
}

// listenAll opens a listener for each device that has none; a device that
// went away (a USB NIC reset) gets a new one once it is back.
func (s *Server) listenAll() {
	for _, dev := range append([]string{"lo"}, s.cfg.Ifaces...) {
		s.mu.Lock()
		_, ok := s.listeners[dev]
		s.mu.Unlock()
		if ok {
			continue
		}
		l, err := listen(dev, s.cfg.Port)
		s.mu.Lock()
		s.errs[dev] = err
		if err == nil {
			s.listeners[dev] = l
		}
		s.mu.Unlock()
		if err != nil {
			continue
		}
		s.cfg.Log.Info("SSH listening", "iface", dev, "port", s.cfg.Port)
		s.run.Go(func(ctx context.Context) { s.accept(ctx, dev, l) })
	}
}

// listen opens [::]:port bound to one device: only what arrives on it.
func listen(dev string, port uint16) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr == nil {
				serr = unix.BindToDevice(int(fd), dev)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("[::]:%d", port))
	if err != nil {
		return nil, fmt.Errorf("listen on %s port %d: %w", dev, port, err)
	}
	return l, nil
}

func (s *Server) accept(ctx context.Context, dev string, l net.Listener) {
	defer context.AfterFunc(ctx, func() { l.Close() })()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			if s.listeners[dev] == l {
				delete(s.listeners, dev)
				if ctx.Err() == nil {
					s.errs[dev] = err
				}
			}
			s.mu.Unlock()
			l.Close()
			return
		}
		release, ok := s.admit(remoteAddr(c))
		if !ok {
			c.Close()
			continue
		}
		s.run.Go(func(ctx context.Context) {
			defer release()
			s.serve(ctx, c, release)
		})
	}
}

// timeoutConn gives authentication authTimeout in all, and then closes
// a connection silent for idleTimeout.
type timeoutConn struct {
	net.Conn
	authed atomic.Bool
}

func (c *timeoutConn) Read(b []byte) (int, error) {
	if c.authed.Load() {
		c.SetDeadline(time.Now().Add(idleTimeout))
	}
	return c.Conn.Read(b)
}

func (c *timeoutConn) Write(b []byte) (int, error) {
	if c.authed.Load() {
		c.SetDeadline(time.Now().Add(idleTimeout))
	}
	return c.Conn.Write(b)
}

// serve runs one connection; release (admit's) is called once it is past
// authentication.
func (s *Server) serve(ctx context.Context, c net.Conn, release func()) {
	defer c.Close()
	from := remoteAddr(c)
	tc := &timeoutConn{Conn: c}
	tc.SetDeadline(time.Now().Add(authTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(tc, s.ssh)
	s.mu.Lock()
	tried := s.tried[c.RemoteAddr().String()]
	delete(s.tried, c.RemoteAddr().String())
	s.mu.Unlock()
	release()
	if err != nil {
		if tried {
			s.authFailures.Add(1)
			if ok, held := s.warn.Allow("auth", time.Now()); ok {
				s.cfg.Log.Warn("SSH authentication failed", "from", from, "err", err, "since_last_warning", held)
			}
			if s.cfg.OnAuthFailure != nil && from.IsValid() {
				s.cfg.OnAuthFailure(from)
			}
		}
		return
	}
	defer sc.Close()
	if s.cfg.OnAuthSuccess != nil && from.IsValid() {
		s.cfg.OnAuthSuccess(from)
	}
	if s.conns.Add(1) > maxConns {
		s.conns.Add(-1)
		s.cfg.Log.Warn("SSH login refused: too many sessions", "from", from, "max", maxConns)
		return
	}
	defer s.conns.Add(-1)
	tc.authed.Store(true)
	tc.SetDeadline(time.Now().Add(idleTimeout))
	s.cfg.Log.Info("SSH login", "from", sc.RemoteAddr(), "user", sc.User(), "key", sc.Permissions.Extensions["key"])
	// Closing on Stop without a goroutine per connection waiting for it.
	defer context.AfterFunc(ctx, func() { sc.Close() })()
	// The connection's commands end with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.run.Go(func(context.Context) { ssh.DiscardRequests(reqs) }) // global requests (tcpip-forward...) are all refused; ends with the connection
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.Prohibited, "this router runs routerctl commands only: no forwarding")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		s.sessions.Add(1)
		s.run.Go(func(context.Context) { // ends with the channel, or with ctx (the connection's)
			defer s.sessions.Add(-1)
			s.session(ctx, ch, creqs)
		})
	}
}

// session serves one channel: one exec request, then exit-status.
func (s *Server) session(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			// pty-req, shell, subsystem, env, x11-req, auth-agent...:
			// a person asking for a shell learns there is none.
			if req.Type == "shell" {
				fmt.Fprint(ch.Stderr(), "This router has no shell. Run a routerctl command, e.g.: ssh ROUTER status\r\n")
			}
			req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		s.commands.Add(1)
		// What else comes on the channel is refused; its end (the client
		// closed the session or went away) ends the command: logs -f does
		// not outlive its reader.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s.run.Go(func(context.Context) { // ends when the channel closes
			defer cancel()
			for r := range reqs {
				r.Reply(false, nil)
			}
		})
		args := strings.Fields(payload.Command)
		if len(args) > 0 && (args[0] == "routerctl" || strings.HasSuffix(args[0], "/routerctl")) {
			args = args[1:]
		}
		code := s.cfg.Exec(ctx, args, ch, ch, ch.Stderr())
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
		return
	}
}

// Status describes the server for routerctl status.
func (s *Server) Status() status.Admin {
	st := status.Admin{Port: int(s.cfg.Port), HostKey: s.Fingerprint(), Keys: len(s.cfg.Keys),
		Sessions: int(s.sessions.Load()), Commands: int(s.commands.Load()), AuthFailures: int(s.authFailures.Load())}
	s.mu.Lock()
	defer s.mu.Unlock()
	for dev := range s.listeners {
		st.Listening = append(st.Listening, dev)
	}
	slices.Sort(st.Listening)
	for _, err := range s.errs {
		if err != nil {
			st.Errors = append(st.Errors, err.Error())
		}
	}
	slices.Sort(st.Errors)
	return st
}
