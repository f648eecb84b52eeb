package hw

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A subscription that fails half-way (the second namespace is missing) used
// to leave Stop waiting forever for a loop that never started.
func TestStopAfterFailedSubscription(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:99:01")
	m := NewManager([]Spec{{Role: "wan", Name: "wan0", MatchMAC: mac, NS: "routerd-test-no-such-netns"}},
		filepath.Join(t.TempDir(), "nics.json"), slog.New(slog.DiscardHandler))
	err := m.Start(context.Background(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "routerd-test-no-such-netns") {
		t.Fatalf("Start = %v, want an error naming the missing namespace", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("Stop after a failed Start: %v", err)
	}
}
