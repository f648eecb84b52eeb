package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"
)

// brokenConn fails every read, as a socket does when its interface goes
// away under it.
type brokenConn struct{ net.PacketConn }

func (brokenConn) ReadFrom([]byte) (int, net.Addr, error) {
	return 0, nil, errors.New("read: network is down")
}
func (brokenConn) SetReadDeadline(time.Time) error { return nil }

// After serve returns on a read error, its watcher must be gone: otherwise
// it takes the next Reopen, which was meant for the socket Run opens next.
func TestServeLeavesNoWatcherToSwallowReopen(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	type server interface{ Reopen() }
	for name, newServer := range map[string]func() (server, func(), *chan struct{}){
		"v4": func() (server, func(), *chan struct{}) {
			s := NewServer4(Server4Config{Iface: "lan0", Log: log}, nil)
			return s, func() { s.serve(context.Background(), brokenConn{}, nil) }, &s.reopen
		},
		"v6": func() (server, func(), *chan struct{}) {
			s := NewServer6(Server6Config{Iface: "lan0", Log: log}, nil)
			return s, func() { s.serve(context.Background(), brokenConn{}) }, &s.reopen
		},
	} {
		t.Run(name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			s, serve, reopen := newServer()
			serve()
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before {
				if time.Now().After(deadline) {
					t.Fatalf("goroutines: %d after serve returned, %d before", runtime.NumGoroutine(), before)
				}
				time.Sleep(time.Millisecond)
			}
			s.Reopen()
			if got, want := len(*reopen), 1; got != want {
				t.Errorf("queued reopens = %d, want %d", got, want)
			}
		})
	}
}
