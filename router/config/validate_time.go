package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// [time]: SNTP client and LAN NTP server.

func (v *validator) time(f *fileTime) {
	if f == nil {
		return
	}
	t := &Time{SetClock: true}
	if f.SetClock != nil {
		t.SetClock = *f.SetClock
	}
	if f.Serve != nil {
		t.Serve = *f.Serve
	}
	for i, s := range f.Servers {
		if !validTimeServer(s) {
			v.p.errf(idx("time.servers", i), "%q is not a host name or address, with an optional :port", s)
			continue
		}
		t.Servers = append(t.Servers, s)
	}
	if len(f.Servers) == 0 && t.Serve {
		v.p.errf("time.serve", "serving time needs time.servers to take it from")
	}
	v.c.Time = t
}

// validTimeServer accepts "name", "name:port", an address, "[v6]:port".
func validTimeServer(s string) bool {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return validDomain(strings.TrimSuffix(host, "."))
}

// [update]: the image's A/B updates.

func (v *validator) update(f *fileUpdate) {
	u := Update{SigningKeyFile: f.SigningKey, Probation: 3 * time.Minute}
	if f.Probation != "" {
		u.Probation = v.duration("update.probation", f.Probation)
		if u.Probation > 0 && u.Probation < 20*time.Second {
			v.p.errf("update.probation", "%s is too short for a box to boot (at least 20s)", f.Probation)
		}
	}
	v.c.Update = u
}

// loadKey reads the signing key (relative to dir).
func (u *Update) loadKey(dir string) []FieldError {
	if u.SigningKeyFile == "" {
		return nil
	}
	u.SigningKeyFile = inDir(dir, u.SigningKeyFile)
	b, err := os.ReadFile(u.SigningKeyFile)
	if err != nil {
		return []FieldError{{Path: "update.signing_key", Msg: err.Error()}}
	}
	blk, _ := pem.Decode(b)
	var k any
	if blk != nil {
		k, err = x509.ParsePKIXPublicKey(blk.Bytes)
	}
	pub, ok := k.(ed25519.PublicKey)
	if blk == nil || err != nil || !ok {
		return []FieldError{{Path: "update.signing_key", Msg: fmt.Sprintf("%s is not a PEM ed25519 public key (openssl pkey -in KEY -pubout)", u.SigningKeyFile)}}
	}
	u.Key = pub
	return nil
}
