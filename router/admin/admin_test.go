package admin

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
)

// connect serves one connection of s over loopback TCP (a net.Pipe has no
// buffer, and both ends of SSH write their version first) and logs in with
// keys. served is closed when s is done with the connection; the client
// is nil when the login failed, and is the caller's to close.
func connect(t *testing.T, s *Server, keys ...ssh.Signer) (client *ssh.Client, served chan struct{}, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served = make(chan struct{})
	go func() {
		defer close(served)
		if c, err := ln.Accept(); err == nil {
			s.serve(context.Background(), c, func() {})
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, "router", &ssh.ClientConfig{User: "admin",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(keys...)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		conn.Close()
		return nil, served, err
	}
	return ssh.NewClient(cc, chans, reqs), served, nil
}

// loggedIn is a server for key running exec, a client logged in to it
// and a session open.
func loggedIn(t *testing.T, key ssh.Signer, exec func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int) (*Server, *ssh.Client, chan struct{}, *ssh.Session) {
	t.Helper()
	s, err := New(Config{
		HostKeyPath: filepath.Join(t.TempDir(), "host_key"),
		Keys:        []ssh.PublicKey{key.PublicKey()},
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Exec:        exec,
	})
	if err != nil {
		t.Fatal(err)
	}
	client, served, err := connect(t, s, key)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	return s, client, served, sess
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFailuresPerConnection: an agent offering two other keys before the
// listed one logs in with no failure counted; a connection offering only
// unlisted keys is one failure, whatever the number of keys.
func TestFailuresPerConnection(t *testing.T) {
	good, bad1, bad2 := newSigner(t), newSigner(t), newSigner(t)
	var mu sync.Mutex
	var failures, successes []netip.Addr
	s, err := New(Config{
		HostKeyPath: filepath.Join(t.TempDir(), "host_key"),
		Keys:        []ssh.PublicKey{good.PublicKey()},
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnAuthFailure: func(a netip.Addr) {
			mu.Lock()
			failures = append(failures, a)
			mu.Unlock()
		},
		OnAuthSuccess: func(a netip.Addr) {
			mu.Lock()
			successes = append(successes, a)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	login := func(keys ...ssh.Signer) error {
		c, served, err := connect(t, s, keys...)
		if err == nil {
			c.Close()
		}
		<-served
		return err
	}
	if err := login(bad1, bad2, good); err != nil {
		t.Fatalf("the listed key offered third: %v", err)
	}
	if len(failures) != 0 || len(successes) != 1 {
		t.Fatalf("after a login offering two other keys first: failures %v, successes %v; want none and one", failures, successes)
	}
	if err := login(bad1, bad2); err == nil {
		t.Fatal("unlisted keys logged in")
	}
	want := netip.MustParseAddr("127.0.0.1")
	if len(failures) != 1 || failures[0] != want {
		t.Fatalf("a connection offering two unlisted keys counted %v, want one failure from %s", failures, want)
	}
	if n := s.Status().AuthFailures; n != 1 {
		t.Errorf("status counts %d failures, want 1", n)
	}
}

// TestAdmit: connections still authenticating are capped per source and in
// all, and a released place is free again.
func TestAdmit(t *testing.T) {
	s := &Server{preauth: map[netip.Addr]int{}, tried: map[string]bool{}}
	a := netip.MustParseAddr("192.168.1.66")
	var held []func()
	for i := 0; i < maxPreauthPerSource; i++ {
		release, ok := s.admit(a)
		if !ok {
			t.Fatalf("connection %d from one source refused", i+1)
		}
		held = append(held, release)
	}
	if _, ok := s.admit(a); ok {
		t.Fatalf("connection %d from one source admitted, want at most %d", maxPreauthPerSource+1, maxPreauthPerSource)
	}
	for i := 0; len(held) < maxPreauth; i++ {
		release, ok := s.admit(netip.AddrFrom4([4]byte{192, 168, 1, byte(100 + i)}))
		if !ok {
			t.Fatalf("connection %d in all refused", len(held)+1)
		}
		held = append(held, release)
	}
	if _, ok := s.admit(netip.MustParseAddr("192.168.1.200")); ok {
		t.Fatalf("connection %d in all admitted, want at most %d", maxPreauth+1, maxPreauth)
	}
	held[0]()
	held[0]() // twice is once
	if _, ok := s.admit(a); !ok {
		t.Error("a released place is not free again")
	}
	if _, ok := s.admit(a); ok {
		t.Error("releasing twice freed two places")
	}
}

// TestCommandEndsWithItsClient: a command that runs until stopped (logs -f)
// ends when its client goes away, not when the router next restarts.
func TestCommandEndsWithItsClient(t *testing.T) {
	good := newSigner(t)
	started, ended := make(chan struct{}), make(chan struct{})
	_, client, served, sess := loggedIn(t, good, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		close(started)
		<-ctx.Done()
		close(ended)
		return 0
	})
	if err := sess.Start("logs -f"); err != nil {
		t.Fatal(err)
	}
	<-started
	client.Close() // the client goes away
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the command outlived its client by 10 s")
	}
	<-served
}

// TestKeyFrom: a key with from= logs in from the addresses listed only.
func TestKeyFrom(t *testing.T) {
	key := newSigner(t)
	fp := ssh.FingerprintSHA256(key.PublicKey())
	for _, c := range []struct {
		from string
		ok   bool
	}{{"10.0.0.0/8", false}, {"127.0.0.0/8", true}} {
		s, err := New(Config{
			HostKeyPath: filepath.Join(t.TempDir(), "host_key"),
			Keys:        []ssh.PublicKey{key.PublicKey()},
			KeyFrom:     map[string][]netip.Prefix{fp: {netip.MustParsePrefix(c.from)}},
			Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		client, served, err := connect(t, s, key)
		if err == nil {
			client.Close()
		}
		<-served
		if (err == nil) != c.ok {
			t.Errorf("from=%s, logging in from 127.0.0.1: %v, want allowed %v", c.from, err, c.ok)
		}
	}
}

// TestOnlyCommands: a command runs and its exit status comes back; a
// shell, a pty and port forwarding are refused; once the connection is
// gone, no goroutine of the server is left.
func TestOnlyCommands(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	good := newSigner(t)
	s, client, served, sess := loggedIn(t, good, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		fmt.Fprint(stdout, strings.Join(args, " "))
		return 3
	})
	out, err := sess.Output("routerctl status --json")
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 || string(out) != "status --json" {
		t.Errorf("exec: output %q, err %v; want %q and exit status 3", out, err, "status --json")
	}
	sess, err = client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
		t.Error("a pty was granted")
	}
	if err := sess.Shell(); err == nil {
		t.Error("a shell was granted")
	}
	sess.Close()
	if c, err := client.Dial("tcp", "127.0.0.1:22"); err == nil {
		c.Close()
		t.Error("port forwarding (direct-tcpip) was accepted")
	}
	if _, err := client.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote forwarding (tcpip-forward) was accepted")
	}
	client.Close()
	<-served
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}
