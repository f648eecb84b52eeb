package blocklist

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/routerd/routerd/dns"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/domainset"
)

// DNS block lists ([[dns.block]]): names the resolver answers itself
// (NXDOMAIN or an unspecified address) instead of asking upstream. A list
// of a million names is held in 8 MiB (internal/domainset): it is read
// line by line into hashes, never into strings.

// BlockParsed is one block list after parsing.
type BlockParsed struct {
	Format   string // as detected for "auto"
	Names    domainset.Set
	Except   domainset.Set // adblock's "@@||name^": never blocked by this list
	Lines    int           // lines in the list's own syntax (comments and cosmetic rules aside)
	Entries  int
	Rejected int
	Samples  []string
}

// ParseBlock reads a block list in format ("auto", "hosts", "adblock" or
// "domains"), refusing one of more than max names (0: no limit).
func ParseBlock(r io.Reader, format string, max int) (*BlockParsed, error) {
	return parseBlock(r, format, max, (*BlockParsed).line)
}

// parseBlock is ParseBlock with each line taken in by line (FuzzParseBlock
// compares the bytes path with the string path, lineSlow).
func parseBlock(r io.Reader, format string, max int, line func(*BlockParsed, []byte, *domainset.Builder, *domainset.Builder)) (*BlockParsed, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if format == "auto" || format == "" {
		head, _ := br.Peek(8192)
		format = detectBlock(head)
	}
	p := &BlockParsed{Format: format}
	var names, except domainset.Builder
	for {
		l, err := readLine(br)
		if len(l) > 0 {
			line(p, l, &names, &except)
			if max > 0 && p.Entries > max {
				return nil, fmt.Errorf("more than %d names (max_entries)", max)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	p.Names, p.Except = names.Set(), except.Set()
	return p, nil
}

// detectBlock guesses a block list's format from its first lines.
func detectBlock(head []byte) string {
	hosts, adblock, domains := 0, 0, 0
	for _, line := range bytes.Split(head, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		switch {
		case s == "" || s[0] == '#':
		case s[0] == '!' || s[0] == '[' || strings.HasPrefix(s, "||") || strings.HasPrefix(s, "@@"):
			adblock++
		default:
			if f := strings.Fields(s); len(f) >= 2 {
				if _, err := netip.ParseAddr(f[0]); err == nil {
					hosts++
					continue
				}
			}
			domains++
		}
	}
	switch {
	case adblock > 0 && adblock >= hosts && adblock >= domains:
		return "adblock"
	case hosts > domains:
		return "hosts"
	}
	return "domains"
}

// hostsLocal are the names a hosts file gives the machine itself.
var hostsLocal = map[string]bool{"localhost": true, "localhost.localdomain": true, "local": true,
	"broadcasthost": true, "ip6-localhost": true, "ip6-loopback": true, "ip6-localnet": true,
	"ip6-mcastprefix": true, "ip6-allnodes": true, "ip6-allrouters": true, "ip6-allhosts": true, "0.0.0.0": true}

// line takes one line in. Hosts and domains lists, the big ones, are read
// from the line's bytes without a string or a slice made per line (a
// refresh of a million names otherwise allocates tens of megabytes, and
// the garbage collector's work then competes with the resolver on a
// small box: BenchmarkDNSTail); a line with a byte beyond ASCII (Unicode
// spaces, which strings.Fields splits on) and adblock lists take the
// string path, lineSlow, whose results FuzzParseBlock holds line to equal.
func (p *BlockParsed) line(line []byte, names, except *domainset.Builder) {
	if p.Format == "adblock" || !ascii(line) {
		p.lineSlow(line, names, except)
		return
	}
	s := bytes.TrimSpace(stripHashBytes(bytes.TrimSpace(line)))
	if len(s) == 0 {
		return
	}
	p.Lines++
	if p.Format != "hosts" {
		if d, ok := normDomainBytes(s); ok {
			names.AddBytes(d)
			p.Entries++
		} else {
			p.reject(string(s))
		}
		return
	}
	addr, rest := nextField(s)
	if !isAddr(addr) || len(rest) == 0 {
		p.reject(string(s))
		return
	}
	for len(rest) > 0 {
		var n []byte
		n, rest = nextField(rest)
		if isHostsLocal(n) {
			continue
		}
		if d, ok := normDomainBytes(n); ok {
			names.AddBytes(d)
			p.Entries++
		} else {
			p.reject(string(n))
		}
	}
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func stripHashBytes(b []byte) []byte {
	if i := bytes.IndexByte(b, '#'); i >= 0 {
		return b[:i]
	}
	return b
}

// nextField splits off the first field of b, which starts with no space
// (ASCII whitespace, as strings.Fields has it for ASCII), and returns the
// rest with its leading spaces gone.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && !asciiSpace(b[i]) {
		i++
	}
	field, rest = b[:i], b[i:]
	for len(rest) > 0 && asciiSpace(rest[0]) {
		rest = rest[1:]
	}
	return field, rest
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// isAddr reports whether b is an IP address; the addresses hosts lists
// use are known without parsing (parsing makes a string of b).
func isAddr(b []byte) bool {
	switch string(b) { // compared without allocating
	case "0.0.0.0", "127.0.0.1", "::", "::1":
		return true
	}
	_, err := netip.ParseAddr(string(b))
	return err == nil
}

// isHostsLocal is hostsLocal[strings.ToLower(n)], without allocating for
// a name in lower case.
func isHostsLocal(n []byte) bool {
	for _, c := range n {
		if 'A' <= c && c <= 'Z' {
			return hostsLocal[strings.ToLower(string(n))]
		}
	}
	return hostsLocal[string(n)]
}

// normDomainBytes is normDomain for an ASCII name, without allocating:
// the name is returned in its own case (the set's hash ignores case).
func normDomainBytes(b []byte) ([]byte, bool) {
	b = bytes.TrimSuffix(bytes.TrimSpace(b), []byte("."))
	if len(b) >= 2 && (b[0] == '*') && b[1] == '.' {
		b = b[2:]
	}
	if len(b) == 0 || len(b) > 253 || bytes.IndexByte(b, '.') < 0 {
		return nil, false
	}
	digits := true
	for _, c := range b {
		digits = digits && (c == '.' || '0' <= c && c <= '9')
	}
	if digits {
		if _, err := netip.ParseAddr(string(b)); err == nil {
			return nil, false
		}
	}
	for l := range bytes.SplitSeq(b, []byte(".")) {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return nil, false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return nil, false
			}
		}
	}
	return b, true
}

func (p *BlockParsed) lineSlow(line []byte, names, except *domainset.Builder) {
	s := strings.TrimSpace(string(line))
	switch p.Format {
	case "hosts":
		s = strings.TrimSpace(stripHash(s))
		if s == "" {
			return
		}
		p.Lines++
		f := strings.Fields(s)
		if _, err := netip.ParseAddr(f[0]); err != nil || len(f) < 2 {
			p.reject(s)
			return
		}
		for _, n := range f[1:] {
			if hostsLocal[strings.ToLower(n)] {
				continue
			}
			if d, ok := normDomain(n); ok {
				names.Add(d)
				p.Entries++
			} else {
				p.reject(n)
			}
		}
	case "adblock":
		// Comments, headers, and the rules only a browser applies
		// (cosmetic "##", URL patterns) are not the list's DNS rules.
		if s == "" || s[0] == '!' || s[0] == '[' || s[0] == '#' || strings.Contains(s, "##") || strings.Contains(s, "#@#") {
			return
		}
		exc := strings.HasPrefix(s, "@@")
		rule := strings.TrimPrefix(s, "@@")
		if !strings.HasPrefix(rule, "||") {
			return
		}
		rule, opts, _ := strings.Cut(rule[2:], "$")
		if opts != "" && opts != "important" {
			return // options other than $important are about browsers (third-party, script, ...)
		}
		p.Lines++
		d, ok := strings.CutSuffix(rule, "^")
		if !ok || strings.ContainsAny(d, "/*") {
			p.reject(s)
			return
		}
		if d, ok = normDomain(d); !ok {
			p.reject(s)
			return
		}
		p.Entries++
		if exc {
			except.Add(d)
		} else {
			names.Add(d)
		}
	default: // domains
		s = strings.TrimSpace(stripHash(s))
		if s == "" {
			return
		}
		p.Lines++
		d, ok := normDomain(s)
		if !ok {
			p.reject(s)
			return
		}
		names.Add(d)
		p.Entries++
	}
}

// stripHash drops a "#" comment (a ';' is no comment in these formats).
func stripHash(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i]
	}
	return s
}

func (p *BlockParsed) reject(s string) {
	p.Rejected++
	if len(p.Samples) < maxSamples {
		p.Samples = append(p.Samples, clip(s))
	}
}

// refreshBlock takes a downloaded block list in, when it is good: parsed,
// saved as the last good copy, and answered by the resolver from now on.
func (m *Manager) refreshBlock(l *list, rc io.ReadCloser, nv validators, now time.Time) error {
	p, err := ParseBlock(rc, l.Format, l.MaxEntries)
	rc.Close()
	if err != nil {
		return err
	}
	l.mu.Lock()
	prevEntries := entriesOf(l.cur)
	l.mu.Unlock()
	if err := l.plausible(p.Lines, p.Entries, p.Rejected, prevEntries, p.Samples); err != nil {
		return err
	}
	s := &saved{Block: &blockSets{Names: p.Names, Except: p.Except}, Meta: meta{Validators: nv, Format: p.Format,
		Entries: p.Entries, Lines: p.Lines, Rejected: p.Rejected, LastSuccess: now}}
	if err := save(m.cfg.Dir, l.Name, s); err != nil {
		m.cfg.Log.Error("save blocklist", "list", l.Name, "err", err)
	}
	l.mu.Lock()
	l.cur = s
	l.fill(s)
	l.st.Samples = p.Samples
	l.st.LastSuccess, l.st.LastError, l.st.LastResult = now, "", "updated"
	l.mu.Unlock()
	m.setBlocks()
	m.cfg.Log.Info("DNS block list updated", "list", l.Name, "names", p.Names.Len(), "exceptions", p.Except.Len(), "rejected", p.Rejected)
	return nil
}

// setBlocks hands the block lists' last good copies to the resolver.
func (m *Manager) setBlocks() {
	if m.cfg.Blocks == nil {
		return
	}
	var out []dns.BlockList
	for _, l := range m.lists {
		if !l.Block {
			continue
		}
		l.mu.Lock()
		if l.cur != nil && l.cur.Block != nil {
			out = append(out, dns.BlockList{Blocked: dns.Blocked{List: l.Name, Null: l.Null}, LANs: l.LANs,
				Names: l.cur.Block.Names, Except: l.cur.Block.Except})
		}
		l.mu.Unlock()
	}
	m.cfg.Blocks.Set(out)
}
