// Package router is routerd's supervisor. It builds the components from a
// validated config (build.go), starts them in dependency order under one
// context and stops them in reverse, reloads on SIGHUP, answers the control
// API's requests on the running components (backend.go; the HTTP side is
// router/api) and assembles the status model that routerctl renders.
//
// The networking itself lives in the leaf packages (hw, netns, rules, dhcp,
// dns); router translates config into their inputs (topology.go,
// firewall.go, under the golden tests of translate_test.go) and wires their
// events together. Leaf packages never import router.
//
// One file per component, named as status names it (dashes as
// underscores: "prefix-delegation" is prefix_delegation.go, type
// prefixDelegationComp); a component's helpers sit beside it in files that
// start with its name (firewall_facts.go).
package router

import (
	"context"
	"sync"
	"time"

	"github.com/routerd/routerd/router/status"
)

// Component is one part of the appliance under supervision.
//
// Start converges the machine to the component's desired state and starts
// its background work bound to ctx. It returns once the component is up, or
// with the reason it is not; a component may keep retrying in the background
// and report later through its Health.
//
// Stop ends the background work. It must not undo network state, so that
// forwarding keeps working while routerd restarts; that is Teardown's job.
type Component interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Teardowner is implemented by components that created machine state which
// routerd --teardown must remove.
type Teardowner interface {
	Teardown(ctx context.Context) error
}

// Health is how a component reports its state after Start returned: a NIC
// that appears late, a tunnel that goes down.
type Health struct {
	mu sync.Mutex
	st status.Component
	up bool // Start returned and Stop has not begun; only the supervisor sets it
}

func newHealth(name string) *Health {
	return &Health{st: status.Component{Name: name, State: status.Starting, Since: time.Now()}}
}

// Running marks the component healthy.
func (h *Health) Running() { h.set(status.Running, "") }

// Failed marks the component failed with err.
func (h *Health) Failed(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	h.set(status.Failed, msg)
}

func (h *Health) set(s status.State, msg string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st.State != s || h.st.Error != msg {
		h.st.State, h.st.Error, h.st.Since = s, msg, time.Now()
	}
}

// started reports whether the component's Start has returned and its Stop
// has not begun: only then may others read its state.
func (h *Health) started() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up
}

func (h *Health) setUp(up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.up = up
}

func (h *Health) status() status.Component {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st
}
