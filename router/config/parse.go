package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads and parses the config file at path. The returned hash identifies
// the file's content (status shows it, so a person can tell which config runs).
func Load(path string) (cfg *Config, hash string, err error) { return load(path, nil) }

// LoadWithin is Load for a config applied through the control API (config
// apply, over SSH): every file it names must lie in one of dirs (the
// config's directory, state_dir), checked before any of them is read, so
// that an SSH key cannot make the router read (and report on) any file.
func LoadWithin(path string, dirs ...string) (cfg *Config, hash string, err error) {
	return load(path, dirs)
}

func load(path string, within []string) (cfg *Config, hash string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read config: %w", err)
	}
	sum := sha256.Sum256(data)
	cfg, err = Parse(data)
	if err == nil && within != nil {
		if errs := cfg.confined(filepath.Dir(path), within); len(errs) > 0 {
			return nil, "", Errors(errs)
		}
	}
	if err == nil {
		var errs []FieldError
		if cfg.Admin != nil {
			errs = append(errs, cfg.Admin.loadAuthorizedKeys(filepath.Dir(path))...)
		}
		errs = append(errs, cfg.Update.loadKey(filepath.Dir(path))...)
		errs = append(errs, cfg.DNS.loadCAs(filepath.Dir(path))...)
		errs = append(errs, cfg.WAN.loadPasswords(filepath.Dir(path))...)
		errs = append(errs, cfg.DNS.loadAnchors(filepath.Dir(path))...)
		cfg.Routing.loadUsers()
		for i := range cfg.Blocklists {
			errs = append(errs, cfg.Blocklists[i].loadCAs(cfg.Blocklists[i].Path, filepath.Dir(path))...)
		}
		if len(errs) > 0 {
			return nil, "", Errors(errs)
		}
	}
	return cfg, hex.EncodeToString(sum[:]), err
}

// Parse parses and validates a config. On failure the error is an Errors
// listing every problem found.
func Parse(data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, Errors{syntaxError(err)}
	}
	var p problems
	checkShape(&p, "", raw, reflect.TypeOf(fileConfig{}))
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	var fc fileConfig
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&fc); err != nil {
		// checkShape accepted the shape, so this is an out-of-range number
		// or similar; still report it in the same form.
		return nil, Errors{syntaxError(err)}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cfg := validate(&p, &fc, keys)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return cfg, nil
}

func syntaxError(err error) FieldError {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return FieldError{Path: fmt.Sprintf("line %d", pe.Position.Line), Msg: pe.Message}
	}
	return FieldError{Msg: err.Error()}
}

// checkShape walks the decoded TOML against the schema type, reporting unknown
// keys and values of the wrong TOML type, all of them, with their paths.
func checkShape(p *problems, path string, m map[string]any, t reflect.Type) {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := f.Tag.Get("toml"); tag != "" {
			fields[tag] = f.Type
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kp := k
		if path != "" {
			kp = path + "." + k
		}
		ft, ok := fields[k]
		if !ok {
			p.errf(kp, "unknown key")
			continue
		}
		checkValue(p, kp, m[k], ft)
	}
}

func checkValue(p *problems, path string, v any, t reflect.Type) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			p.errf(path, "want a string, got %s", describe(v))
		}
	case reflect.Int64:
		if _, ok := v.(int64); !ok {
			p.errf(path, "want an integer, got %s", describe(v))
		}
	case reflect.Float64:
		switch v.(type) {
		case int64, float64:
		default:
			p.errf(path, "want a number, got %s", describe(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			p.errf(path, "want true or false, got %s", describe(v))
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			p.errf(path, "want a table, got %s", describe(v))
			return
		}
		checkShape(p, path, m, t)
	case reflect.Slice:
		elem := t.Elem()
		if elem.Kind() == reflect.Struct {
			tables, ok := v.([]map[string]any)
			if items, inline := v.([]any); inline {
				// An array of inline tables: ports = [{ ... }, { ... }].
				ok = true
				tables = nil
				for _, it := range items {
					m, isTable := it.(map[string]any)
					if !isTable {
						ok = false
						break
					}
					tables = append(tables, m)
				}
			}
			if !ok {
				p.errf(path, "want an array of tables ([[%s]]), got %s", path, describe(v))
				return
			}
			for i, m := range tables {
				checkShape(p, idx(path, i), m, elem)
			}
			return
		}
		items, ok := v.([]any)
		if !ok {
			p.errf(path, "want an array, got %s", describe(v))
			return
		}
		for i, it := range items {
			checkValue(p, idx(path, i), it, elem)
		}
	}
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	default:
		return strings.TrimPrefix(fmt.Sprintf("%T", v), "*")
	}
}

// files are the files a config names, by key, resolved as Load will.
func (c *Config) files(dir string) map[string]string {
	out := map[string]string{}
	if c.Admin != nil {
		out["admin.authorized_keys"] = inDir(dir, c.Admin.AuthorizedKeysFile)
	}
	add := func(key, file string) {
		if file != "" {
			out[key] = inDir(dir, file)
		}
	}
	add("update.signing_key", c.Update.SigningKeyFile)
	add("dns.tls_ca_file", c.DNS.TLSCAFile)
	if c.WAN.PPPoE != nil {
		add("wan.pppoe.password_file", c.WAN.PPPoE.PasswordFile)
	}
	if b := c.WAN.Backup; b != nil && b.PPPoE != nil {
		add("wan.backup.pppoe.password_file", b.PPPoE.PasswordFile)
	}
	add("dns.trust_anchors", c.DNS.TrustAnchorsFile)
	for _, b := range c.Blocklists {
		add(b.Path+".file", b.File)
		add(b.Path+".ca_file", b.CAFile)
	}
	if c.VPN != nil {
		add("vpn.private_key_file", c.VPN.PrivateKeyFile)
		for i, p := range c.VPN.Peers {
			add(idx("vpn.peer", i)+".preshared_key_file", p.PresharedKeyFile)
		}
	}
	if r := c.Relay; r != nil {
		add("relay.private_key_file", r.PrivateKeyFile)
		// Written, not read: over config apply it must not overwrite
		// any file on the box.
		add("relay.public_key_file", r.PublicKeyFile)
		for i, p := range r.Peers {
			add(idx("relay.peer", i)+".preshared_key_file", p.PresharedKeyFile)
		}
	}
	return out
}

// confined reports each file the config names outside dirs. Symbolic links
// are followed, on both sides, where they exist.
func (c *Config) confined(dir string, dirs []string) []FieldError {
	real := func(p string) string {
		p = filepath.Clean(p)
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		// A file still to be made (a key routerd writes): its directory.
		if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			return filepath.Join(r, filepath.Base(p))
		}
		return p
	}
	var roots []string
	for _, d := range dirs {
		if d != "" {
			roots = append(roots, real(d))
		}
	}
	files := c.files(dir)
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []FieldError
	for _, k := range keys {
		f := real(files[k])
		ok := false
		for _, r := range roots {
			if rel, err := filepath.Rel(r, f); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
				ok = true
			}
		}
		if !ok {
			errs = append(errs, FieldError{Path: k, Msg: fmt.Sprintf("%s lies outside %s: a config applied through the control API names files there only",
				files[k], strings.Join(dirs, " and "))})
		}
	}
	return errs
}
