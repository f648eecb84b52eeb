package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStopWaitsForGoroutines(t *testing.T) {
	var g Group
	g.Start(context.Background())
	ended := make(chan struct{})
	g.Go(func(ctx context.Context) {
		<-ctx.Done()
		close(ended)
	})
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-ended:
	default:
		t.Fatal("Stop returned before the goroutine ended")
	}
	if got := g.Running(); got != 0 {
		t.Errorf("Running() = %d after Stop, want 0", got)
	}
}

func TestStopReturnsWithinItsContext(t *testing.T) {
	var g Group
	g.Start(context.Background())
	release := make(chan struct{})
	defer close(release)
	g.Go(func(ctx context.Context) { <-release }) // ignores ctx: a bug Stop must survive
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := g.Stop(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want context.Canceled", err)
	}
	if got, want := err.Error(), "1 goroutines still running: context canceled"; got != want {
		t.Errorf("Stop error = %q, want %q", got, want)
	}
}

func TestStopWithoutStart(t *testing.T) {
	var g Group
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("Stop of a group never started: %v", err)
	}
	if err := g.Context().Err(); err == nil {
		t.Error("Context() of a group never started is live, want cancelled")
	}
}

// A component whose Start fails half-way stops at once: the shape of the
// hw and dns bugs where a failed subscription left Stop waiting forever.
func TestStopAfterFailedStart(t *testing.T) {
	var g Group
	start := func() error {
		g.Start(context.Background())
		return errors.New("subscribe: no such device") // before any Go
	}
	if err := start(); err == nil {
		t.Fatal("start did not fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Fatalf("Stop after a failed Start: %v", err)
	}
}

func TestRestart(t *testing.T) {
	var g Group
	for i := 0; i < 3; i++ {
		ctx := g.Start(context.Background())
		g.Go(func(ctx context.Context) { <-ctx.Done() })
		if err := g.Stop(context.Background()); err != nil {
			t.Fatalf("round %d: Stop: %v", i, err)
		}
		if ctx.Err() == nil {
			t.Fatalf("round %d: context live after Stop", i)
		}
	}
}

func TestEvery(t *testing.T) {
	var g Group
	g.Start(context.Background())
	ran := make(chan struct{}, 10)
	g.Every(time.Millisecond, func(ctx context.Context) { ran <- struct{}{} })
	for range 3 {
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatal("f did not run")
		}
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := g.Running(); got != 0 {
		t.Errorf("Running() = %d after Stop, want 0", got)
	}
}

// A goroutine may start another while Stop waits (a socket's reader that
// hands a slow question to a goroutine of its own): Stop waits for both.
func TestGoWhileStopping(t *testing.T) {
	var g Group
	g.Start(context.Background())
	second := make(chan struct{})
	g.Go(func(ctx context.Context) {
		<-ctx.Done()
		g.Go(func(context.Context) { time.Sleep(10 * time.Millisecond); close(second) })
	})
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-second:
	default:
		t.Fatal("Stop returned before the goroutine started during Stop ended")
	}
}
