package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func authorizedLine(t *testing.T, pub any, comment string) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

func TestAuthorizedKeys(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	strong, _ := rsa.GenerateKey(rand.Reader, 2048)
	file := strings.Join([]string{
		"# the admin's laptop",
		authorizedLine(t, edPub, "me@laptop"),
		"",
		`from="192.168.1.0/24",no-pty ` + authorizedLine(t, &strong.PublicKey, "backup"),
		"ssh-ed25519 AAAAnotbase64 broken",
		authorizedLine(t, &weak.PublicKey, "old"),
	}, "\n")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(file), 0o600)
	cfgPath := filepath.Join(dir, "routerd.toml")
	os.WriteFile(cfgPath, []byte(`[wan]
match_mac = "02:00:00:00:00:01"
[[lan]]
name = "lan0"
match_mac = "02:00:00:00:00:02"
addresses = ["192.168.1.1/24"]
[admin]
listen = ["lan0"]
`), 0o600)
	_, _, err := Load(cfgPath)
	if err == nil {
		t.Fatal("Load accepted a broken authorized_keys")
	}
	got := err.Error()
	for _, want := range []string{"line 5: not an OpenSSH public key", "line 6: RSA key of 1024 bits: at least 2048 are needed"} {
		if !strings.Contains(got, want) {
			t.Errorf("error %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "line 2") || strings.Contains(got, "line 4") {
		t.Errorf("good lines reported: %q", got)
	}
	// Fixed, the file loads with both good keys.
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(strings.Join(strings.Split(file, "\n")[:4], "\n")), 0o600)
	cfg, _, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Admin; len(a.Keys) != 2 || a.Port != 22 || a.BanAfter != 5 || a.AuthorizedKeysFile != filepath.Join(dir, "authorized_keys") {
		t.Errorf("admin = %+v", a)
	}
}

// TestBlocklistCAFile: ca_file is read at load, relative to the config's
// directory; a missing file or one without a certificate is an error
// naming the key.
func TestBlocklistCAFile(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "routerd.toml")
	os.WriteFile(cfgPath, []byte(`[wan]
match_mac = "02:00:00:00:00:01"
[[lan]]
name = "lan0"
match_mac = "02:00:00:00:00:02"
addresses = ["192.168.1.1/24"]
[[blocklist]]
name = "private"
url = "https://lists.example/x.txt"
ca_file = "lab-ca.pem"
via = "wan"
`), 0o600)
	if _, _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), "blocklist[0].ca_file") {
		t.Errorf("missing ca_file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "lab-ca.pem"), []byte("not a certificate\n"), 0o600)
	if _, _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("ca_file without a certificate: %v", err)
	}
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	os.WriteFile(filepath.Join(dir, "lab-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	cfg, _, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Blocklists[0]; b.RootCAs == nil || b.CAFile != filepath.Join(dir, "lab-ca.pem") {
		t.Errorf("blocklist = %+v", b)
	}
}

// TestTrustAnchorsFile: dns.trust_anchors is read at load, relative to the
// config's directory; a missing file, or one without DS or DNSKEY records
// or with a record that does not parse, is an error naming the key.
func TestTrustAnchorsFile(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "routerd.toml")
	os.WriteFile(cfgPath, []byte(`[wan]
match_mac = "02:00:00:00:00:01"
[[lan]]
name = "lan0"
match_mac = "02:00:00:00:00:02"
addresses = ["192.168.1.1/24"]
[dns]
dnssec = true
trust_anchors = "anchors.ds"
`), 0o600)
	anchors := filepath.Join(dir, "anchors.ds")
	for _, tc := range []struct{ content, err string }{
		{"", "no such file"},
		{"test. IN A 192.0.2.1\n", "no DS or DNSKEY record"},
		{"test. IN DS 1 13 two ABCD\n", "anchors.ds"},
	} {
		os.Remove(anchors)
		if tc.content != "" {
			os.WriteFile(anchors, []byte(tc.content), 0o600)
		}
		if _, _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), "dns.trust_anchors") || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want dns.trust_anchors: ...%s", tc.content, err, tc.err)
		}
	}
	os.WriteFile(anchors, []byte("test. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"), 0o600)
	cfg, _, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.DNS; !d.DNSSEC || len(d.TrustAnchors) != 1 || d.TrustAnchorsFile != anchors {
		t.Errorf("dns = %+v", d)
	}
}

// TestLoadWithin: a config applied through the control API names files in
// the config's directory and state_dir only; one outside (a symbolic link
// out counts as outside) is an error naming its key, before any file is
// read, and the error says nothing of the file's content.
func TestLoadWithin(t *testing.T) {
	dir, state, elsewhere := t.TempDir(), t.TempDir(), t.TempDir()
	secret := filepath.Join(elsewhere, "shadow")
	os.WriteFile(secret, []byte("root:$6$s3cr3t:19000:0:99999:7:::\n"), 0o600)
	os.Symlink(secret, filepath.Join(dir, "link"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), nil, 0o600)
	base := fmt.Sprintf(`state_dir = %q
[wan]
match_mac = "02:00:00:00:00:01"
[[lan]]
name = "lan0"
match_mac = "02:00:00:00:00:02"
addresses = ["192.168.1.1/24"]
[admin]
listen = ["lan0"]
`, state)
	cfgPath := filepath.Join(dir, "routerd.toml")
	for _, c := range []struct {
		extra, key string
	}{
		{fmt.Sprintf("[dns]\ndnssec = true\ntrust_anchors = %q\n", secret), "dns.trust_anchors"},
		{"[dns]\ndnssec = true\ntrust_anchors = \"link\"\n", "dns.trust_anchors"},
		{"[update]\nsigning_key = \"../../etc/shadow\"\n", "update.signing_key"},
	} {
		os.WriteFile(cfgPath, []byte(base+c.extra), 0o600)
		_, _, err := LoadWithin(cfgPath, dir, state)
		if err == nil || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), "lies outside") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: %v; want %s refused as outside", c.extra, err, c.key)
		}
	}
	os.WriteFile(cfgPath, []byte(base), 0o600)
	if _, _, err := LoadWithin(cfgPath, dir, state); err != nil {
		t.Errorf("authorized_keys beside the config: %v", err)
	}
}

// TestAuthorizedKeyOptions: from= is kept for the server to enforce;
// options routerd honours anyway pass; an option it would silently ignore
// (cert-authority, command=...) refuses the line.
func TestAuthorizedKeyOptions(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	line := authorizedLine(t, pub, "k")
	keys, from, errs := parseAuthorizedKeys([]byte(strings.Join([]string{
		`restrict,from="192.168.1.0/24,fd00:1::5" ` + line,
		`cert-authority ` + line,
		`command="status" ` + line,
		`from="*.lan" ` + line,
		`environment="A=b" ` + line,
	}, "\n")))
	if len(keys) != 1 || len(errs) != 4 {
		t.Fatalf("keys %d, errors %v; want the first line's key and four lines refused", len(keys), errs)
	}
	for i, want := range []string{"line 2: cert-authority", "line 3: option command", "line 4: from=", "line 5: option environment"} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d = %v, want %q", i, errs[i], want)
		}
	}
	got := from[ssh.FingerprintSHA256(keys[0])]
	if len(got) != 2 || got[0].String() != "192.168.1.0/24" || got[1].String() != "fd00:1::5/128" {
		t.Errorf("from = %v", got)
	}
}
