// Package bench measures routerd against the daemons it replaces (dnsmasq,
// unbound, nft -f), on the same lab topology in the same run, and reports
// ratios. Benchmarks only report; nothing here asserts a timing.
//
//	make bench
package bench
