// Package dhcp owns address assignment: the DHCPv4 and DHCPv6 servers and
// router advertisements on the LAN, the lease store behind them, and the
// WAN's DHCP client. Servers speak the protocols through
// insomniacslk/dhcp and mdlayher/ndp on sockets bound to their interface;
// malformed packets are dropped and counted, never trusted.
//
// It does not decide routing or firewalling; it only configures the
// addresses and routes its protocols hand out or receive.
package dhcp
