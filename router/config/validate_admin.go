package config

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// [admin]: SSH management from the LAN.

func (v *validator) admin(f *fileAdmin) {
	if f == nil {
		return
	}
	a := &Admin{Port: 22, AuthorizedKeysFile: or(f.AuthorizedKeys, "authorized_keys"), BanAfter: 5, BanTime: time.Hour}
	for i, name := range f.Listen {
		if !v.isLAN(name) {
			v.p.errf(idx("admin.listen", i), "%q is not a [[lan]] name: SSH is served on LAN interfaces only", name)
			continue
		}
		if slices.Contains(a.Listen, name) {
			v.p.errf(idx("admin.listen", i), "%q is listed twice", name)
			continue
		}
		a.Listen = append(a.Listen, name)
	}
	if f.Port != nil {
		if *f.Port < 1 || *f.Port > 65535 {
			v.p.errf("admin.port", "%d is outside 1-65535", *f.Port)
		} else {
			a.Port = uint16(*f.Port)
		}
	}
	if f.BanAfter != nil {
		if *f.BanAfter < 1 || *f.BanAfter > 1000 {
			v.p.errf("admin.ban_after", "%d is outside 1-1000", *f.BanAfter)
		} else {
			a.BanAfter = int(*f.BanAfter)
		}
	}
	if f.BanTime != "" {
		a.BanTime = v.duration("admin.ban_time", f.BanTime)
	}
	v.c.Admin = a
}

// loadAuthorizedKeys reads the admin's authorized_keys (relative to dir),
// as OpenSSH does: comments, blank lines and option prefixes are fine; a
// line that is not a key, or a key too weak (RSA under 2048 bits, DSA), is
// an error naming its line.
func (a *Admin) loadAuthorizedKeys(dir string) []FieldError {
	a.AuthorizedKeysFile = inDir(dir, a.AuthorizedKeysFile)
	data, err := os.ReadFile(a.AuthorizedKeysFile)
	if err != nil {
		return nil // a warning (FileWarnings): keys may be added later
	}
	keys, from, errs := parseAuthorizedKeys(data)
	a.Keys, a.KeyFrom = keys, from
	var out []FieldError
	for _, e := range errs {
		out = append(out, FieldError{Path: "admin.authorized_keys", Msg: fmt.Sprintf("%s: %v", a.AuthorizedKeysFile, e)})
	}
	return out
}

// authorized_keys options routerd honours by nature: it never gives a
// pty, a shell, forwarding, an agent, X11 or a user rc, whatever the line
// says.
var keptOptions = map[string]bool{"restrict": true, "no-pty": true, "no-port-forwarding": true,
	"no-agent-forwarding": true, "no-x11-forwarding": true, "no-user-rc": true}

// keyOptions checks one line's options: from= (addresses and CIDRs) is
// enforced, the options above are what routerd does anyway; any other
// (cert-authority, command=, environment=, permitopen=, expiry-time=...)
// would be silently ignored, so the line is refused.
func keyOptions(opts []string) ([]netip.Prefix, error) {
	var from []netip.Prefix
	for _, o := range opts {
		name, val, hasVal := strings.Cut(o, "=")
		name = strings.ToLower(name)
		switch {
		case keptOptions[name] && !hasVal:
		case name == "from" && hasVal:
			for _, p := range strings.Split(strings.Trim(val, `"`), ",") {
				pfx, err := netip.ParsePrefix(p)
				if err != nil {
					a, aerr := netip.ParseAddr(p)
					if aerr != nil {
						return nil, fmt.Errorf("from=%q: routerd matches addresses and CIDRs only (no host names, patterns or negations)", p)
					}
					pfx = netip.PrefixFrom(a, a.BitLen())
				}
				from = append(from, pfx.Masked())
			}
		case name == "cert-authority":
			return nil, errors.New("cert-authority: certificate authorities are not supported; list the user keys themselves")
		default:
			return nil, fmt.Errorf("option %s is not supported (routerd would not enforce it); remove it or the line", name)
		}
	}
	return from, nil
}

func parseAuthorizedKeys(data []byte) ([]ssh.PublicKey, map[string][]netip.Prefix, []error) {
	var keys []ssh.PublicKey
	from := map[string][]netip.Prefix{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, _, opts, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: not an OpenSSH public key", n))
			continue
		}
		allowed, err := keyOptions(opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %v", n, err))
			continue
		}
		if len(allowed) > 0 {
			from[ssh.FingerprintSHA256(key)] = allowed
		}
		if err := strongEnough(key); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %v", n, err))
			continue
		}
		keys = append(keys, key)
	}
	return keys, from, errs
}

// strongEnough accepts ed25519, ECDSA, and RSA of 2048 bits or more.
func strongEnough(k ssh.PublicKey) error {
	cpk, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return fmt.Errorf("%s keys are not accepted", k.Type())
	}
	switch pk := cpk.CryptoPublicKey().(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits: at least 2048 are needed", pk.N.BitLen())
		}
	case *ecdsa.PublicKey:
	default:
		if k.Type() != ssh.KeyAlgoED25519 {
			return fmt.Errorf("%s keys are not accepted (ed25519, ECDSA or RSA of 2048+ bits)", k.Type())
		}
	}
	return nil
}
