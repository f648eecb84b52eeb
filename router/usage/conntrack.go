package usage

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/rules"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// LAN says whether an address is a LAN host's.
type LAN func(netip.Addr) bool

// flow is a tracked connection from its LAN host's side, or ok false for
// one without a LAN host (the router's own).
func flow(f conntrack.Flow, lan LAN) (Flow, bool) {
	src := f.TupleOrig.IP.SourceAddress.Unmap()
	dst := f.TupleOrig.IP.DestinationAddress.Unmap()
	out := Flow{ID: f.ID, Path: via.FromMark(f.Mark).String()} // "" before the policy decided
	switch {
	case lan(src): // the host opened it
		out.Host, out.Up, out.Down = src, f.CountersOrig.Bytes, f.CountersReply.Bytes
	case lan(dst): // opened towards it (a port forward)
		out.Host, out.Up, out.Down = dst, f.CountersReply.Bytes, f.CountersOrig.Bytes
	default:
		return Flow{}, false
	}
	return out, true
}

// Dump reads the LAN hosts' connections in namespace ns.
func Dump(ns string, lan LAN) ([]Flow, error) {
	c, done, err := rules.DialConntrack(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	fs, err := c.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack dump: %w", err)
	}
	out := make([]Flow, 0, len(fs))
	for _, f := range fs {
		if fl, ok := flow(f, lan); ok {
			out = append(out, fl)
		}
	}
	return out, nil
}

// Ends calls fn with each LAN host's connection as it ends, with its
// last counters, until ctx ends.
func Ends(ctx context.Context, ns string, lan LAN, fn func(Flow)) error {
	c, done, err := rules.DialConntrack(ns)
	if err != nil {
		return err
	}
	defer done()
	events := make(chan conntrack.Event, 1024)
	errs, err := c.Listen(events, 1, []netfilter.NetlinkGroup{netfilter.GroupCTDestroy})
	if err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if err != nil {
				return fmt.Errorf("conntrack events: %w", err)
			}
		case ev := <-events:
			if ev.Flow == nil {
				continue
			}
			if fl, ok := flow(*ev.Flow, lan); ok {
				fn(fl)
			}
		}
	}
}
