// Package logring keeps the last records a process logged, in memory, for
// routerctl logs: a slog.Handler that formats each record once as a text
// line into a ring bounded by bytes, besides handing it to the real handler
// (stdout, the console). Followers hear of new lines as they come.
package logring

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Entry is one logged line.
type Entry struct {
	Time      time.Time
	Component string
	Line      string // as the text handler prints it, without the newline
}

// Ring holds the newest entries that fit in its byte budget.
type Ring struct {
	max int

	mu      sync.Mutex
	entries []Entry // oldest first
	size    int
	follow  map[chan Entry]struct{}
}

// New returns a ring keeping about maxBytes of lines.
func New(maxBytes int) *Ring {
	return &Ring{max: maxBytes, follow: map[chan Entry]struct{}{}}
}

func (r *Ring) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	r.size += len(e.Line)
	drop := 0
	for r.size > r.max && drop < len(r.entries)-1 {
		r.size -= len(r.entries[drop].Line)
		drop++
	}
	if drop > 0 {
		r.entries = append(r.entries[:0], r.entries[drop:]...)
	}
	for ch := range r.follow {
		select {
		case ch <- e:
		default: // a follower that cannot keep up misses lines, not the logger
		}
	}
}

// Since returns the entries at or after since (zero: all) of component
// (empty: all), oldest first.
func (r *Ring) Since(since time.Time, component string) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Entry
	for _, e := range r.entries {
		if e.Time.Before(since) || (component != "" && e.Component != component) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Follow returns a channel of new entries until cancel is called.
func (r *Ring) Follow() (<-chan Entry, func()) {
	ch := make(chan Entry, 256)
	r.mu.Lock()
	r.follow[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.follow, ch)
		r.mu.Unlock()
	}
}

// Handler tees records into a Ring and the inner handler.
type Handler struct {
	ring      *Ring
	inner     slog.Handler
	text      slog.Handler // formats into buf
	buf       *bytes.Buffer
	mu        *sync.Mutex // guards buf
	component string
}

// NewHandler returns a handler that logs to inner and keeps each record,
// formatted like slog's text handler, in ring.
func NewHandler(ring *Ring, inner slog.Handler) *Handler {
	buf := new(bytes.Buffer)
	return &Handler{ring: ring, inner: inner, buf: buf, mu: new(sync.Mutex),
		text: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.inner.Handle(ctx, r)
	comp := h.component
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "component" {
			comp = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.buf.Reset()
	_ = h.text.Handle(ctx, r) // into a bytes.Buffer, which does not fail
	line := strings.TrimSuffix(h.buf.String(), "\n")
	h.mu.Unlock()
	h.ring.add(Entry{Time: r.Time, Component: comp, Line: line})
	return err
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	c.text = h.text.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "component" {
			c.component = a.Value.String()
		}
	}
	return &c
}

func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	c.text = h.text.WithGroup(name)
	return &c
}
