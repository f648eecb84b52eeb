// Package rtproto names the rtnetlink protocol numbers on the routes and
// rules routerd installs ("proto N" in ip route and ip rule). Each owner
// converges, and tears down, only the entries with its own number, so the
// numbers are one fact, kept here, not one per package.
package rtproto

import "golang.org/x/sys/unix"

const (
	// Plan: the routing plan's routes and rules (netns.Plan).
	Plan = 201
	// Tunnel: the routes into the tunnel (router/vpn).
	Tunnel = 202
	// Delegated: the routes of a delegated prefix (router's PD).
	Delegated = 203
	// Failover: the default routes through the active uplink, in front
	// of each uplink's own (router/failover).
	Failover = 204
	// DHCP: the default route the WAN DHCP client installs.
	DHCP = unix.RTPROT_DHCP
)
