// Package timesync owns the system clock of the appliance.
//
// A box with a dead RTC boots in 1970 or 2020: certificates are "not yet
// valid", WireGuard handshakes look like replays, leases jump. timesync
// keeps the clock from ever going below a floor (the build time, and the
// last time saved in the state directory, as systemd-timesyncd's clock file
// does), synchronises it with SNTP (RFC 4330) from configured servers over
// the router's own path, and answers NTP requests from the LAN so that its
// clients need nothing else.
//
// The client side uses github.com/beevik/ntp for queries and validation;
// selection (outliers against the median), step and slew, the floor and the
// server side are here. The server's packet code is Reply, a pure function
// of the request and the clock's state, fuzzed.
package timesync
