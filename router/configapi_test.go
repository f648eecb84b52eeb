package router

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/routerd/routerd/router/config"
)

// TestKeepsSigningKey: a config applied through the API may add the update
// signing key but neither drop nor change it.
func TestKeepsSigningKey(t *testing.T) {
	k1 := ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))
	k2 := ed25519.PublicKey(append(make([]byte, ed25519.PublicKeySize-1), 1))
	with := func(k ed25519.PublicKey) *config.Config { return &config.Config{Update: config.Update{Key: k}} }
	for _, c := range []struct {
		cur, next ed25519.PublicKey
		refused   string
	}{
		{nil, nil, ""},
		{nil, k1, ""},
		{k1, k1, ""},
		{k1, nil, "cannot be removed"},
		{k1, k2, "cannot be changed"},
	} {
		err := keepsSigningKey(with(c.cur), with(c.next))
		if c.refused == "" && err != nil || c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)) {
			t.Errorf("from key %v to %v: %v, want %q", c.cur != nil, c.next != nil, err, c.refused)
		}
	}
}
