package logring

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRing(t *testing.T) {
	r := New(200)
	log := slog.New(NewHandler(r, slog.NewTextHandler(io.Discard, nil)))
	follow, stop := r.Follow()
	defer stop()
	log.With("component", "dns").Info("listening", "addr", "192.168.1.1")
	log.Info("routerd ready")
	select {
	case e := <-follow:
		if e.Component != "dns" || !strings.Contains(e.Line, `msg=listening component=dns addr=192.168.1.1`) {
			t.Errorf("followed %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no line followed")
	}
	if got := r.Since(time.Time{}, "dns"); len(got) != 1 {
		t.Errorf("dns lines = %v", got)
	}
	if got := r.Since(time.Time{}, ""); len(got) != 2 {
		t.Errorf("all lines = %v", got)
	}
	// The budget keeps the newest lines only.
	for i := 0; i < 50; i++ {
		log.Info("filler", "i", i)
	}
	all := r.Since(time.Time{}, "")
	if n := len(all); n == 0 || n > 5 || !strings.Contains(all[n-1].Line, "i=49") {
		t.Errorf("after filling: %d lines, last %q", n, all[n-1].Line)
	}
	if got := r.Since(time.Now().Add(time.Minute), ""); len(got) != 0 {
		t.Errorf("lines from the future: %v", got)
	}
}
