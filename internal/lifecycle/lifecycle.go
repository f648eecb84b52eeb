// Package lifecycle is the one way routerd's components run background work.
//
// A Group owns a context and the goroutines started under it. Start derives
// the context; Go runs a tracked goroutine; Stop cancels and waits for the
// goroutines, but never longer than its own context allows, so a stuck
// goroutine cannot hang the supervisor. A Group whose Start failed half-way,
// or that was never started, stops at once: there is nothing to wait for.
//
// It owns nothing else: what a component converges (links, rules, sockets)
// is the component's to close after Stop returns.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Group tracks the goroutines of one component. The zero value is ready to
// use; a Group can be started again after Stop. Go may be called at any
// time, also while Stop waits (a goroutine that ends by starting another):
// the count is a plain counter under the mutex, not a sync.WaitGroup,
// whose Add must not race with Wait.
type Group struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	running int           // goroutines not yet returned
	idle    chan struct{} // closed when running drops to 0; made by a waiting Stop
}

// Start derives the group's context from parent and returns it. A group
// that is already running is stopped first (without waiting) so that its
// goroutines end with the old context.
func (g *Group) Start(parent context.Context) context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancel != nil {
		g.cancel()
	}
	g.ctx, g.cancel = context.WithCancel(parent)
	return g.ctx
}

// Context is the group's context: cancelled by Stop. Before Start it is
// already cancelled, so that work started by mistake ends at once.
func (g *Group) Context() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.contextLocked()
}

func (g *Group) contextLocked() context.Context {
	if g.ctx == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	return g.ctx
}

// Go runs f in a goroutine that Stop waits for. f must return once ctx is
// done (or, for a socket's reader, once the socket its owner closes is).
func (g *Group) Go(f func(ctx context.Context)) {
	g.mu.Lock()
	ctx := g.contextLocked()
	g.running++
	g.mu.Unlock()
	go func() {
		defer g.done()
		f(ctx)
	}()
}

func (g *Group) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.running == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// Every runs f every d (the first time after d) in a goroutine that Stop
// waits for.
func (g *Group) Every(d time.Duration, f func(ctx context.Context)) {
	g.Go(func(ctx context.Context) {
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				f(ctx)
			}
		}
	})
}

// Stop cancels the group's context and waits for its goroutines until ctx
// ends. It returns an error saying how many were still running if ctx ended
// first; they are left to finish on their own.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	if g.cancel != nil {
		g.cancel()
	}
	if g.running == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d goroutines still running: %w", g.Running(), ctx.Err())
	}
}

// Running reports how many of the group's goroutines have not returned.
func (g *Group) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}
