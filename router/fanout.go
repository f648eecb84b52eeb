package router

import "sync"

// The components' wiring: a component that others listen to keeps a
// fanout of their functions.

// fanout hands each value to every function registered with it.
type fanout[T any] struct {
	mu  sync.Mutex
	fns []func(T)
}

func (f *fanout[T]) add(fn func(T)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fns = append(f.fns, fn)
}

func (f *fanout[T]) call(v T) {
	for _, fn := range f.list() {
		fn(v)
	}
}

// list returns the functions registered so far.
func (f *fanout[T]) list() []func(T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fns
}
