// Package pppoe owns the WAN's PPPoE client: discovery (RFC 2516) on the
// WAN link, and the PPP link over the session (LCP with echo monitoring,
// PAP and CHAP-MD5, IPCP with DNS, IPv6CP) on the kernel's PPPoE and PPP
// drivers, which carry the data path. The protocol is in state machines
// that take packets and the clock and say what to send (Discovery, Link:
// fuzzed, no I/O); Client runs them on the sockets, installs the session's
// addresses and routes in its namespace, and reconnects with backoff.
package pppoe
