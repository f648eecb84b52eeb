package debian

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ModName normalises a module name as the kernel does: '-' and '_' are
// the same.
func ModName(s string) string {
	s = strings.TrimSuffix(filepath.Base(s), ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// Modules knows every module file of a kernel and which modules are
// built in.
type Modules struct {
	dir     string            // lib/modules/VERSION
	path    map[string]string // name -> file
	builtin map[string]bool
	aliases map[string][]string // alias -> modules, read on first need
}

// IndexModules indexes lib/modules/VERSION of a kernel.
func IndexModules(dir string) (*Modules, error) {
	idx := &Modules{dir: dir, path: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			idx.path[ModName(p)] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules in %s: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("read modules.builtin: %w", err)
	}
	for _, l := range strings.Fields(string(b)) {
		idx.builtin[ModName(l)] = true
	}
	return idx, nil
}

// deps reads a module's hard dependencies and its "pre" soft dependencies
// (which must be loaded first for it to work, e.g. a crypto driver) from
// its .modinfo section.
func (idx *Modules) deps(name string) (hard, soft []string, err error) {
	info, err := modinfo(idx.path[name])
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range info {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					hard = append(hard, ModName(d))
				}
			}
		case "softdep":
			// "pre: a b post: c"
			pre := false
			for _, tok := range strings.Fields(v) {
				switch tok {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						soft = append(soft, ModName(tok))
					}
				}
			}
		}
	}
	return hard, soft, nil
}

// modinfo returns a module's key=value pairs.
func modinfo(path string) ([][]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo of %s: %w", path, err)
	}
	return bytes.Split(data, []byte{0}), nil
}

// resolve returns the modules a name stands for: itself, or the modules
// that declare it as an alias (a soft dependency such as "crc32c" names
// an algorithm that crc32c_generic and crc32c_intel provide).
func (idx *Modules) resolve(name string) []string {
	if _, ok := idx.path[name]; ok || idx.builtin[name] {
		return []string{name}
	}
	if idx.aliases == nil {
		idx.aliases = map[string][]string{}
		for m, p := range idx.path {
			info, err := modinfo(p)
			if err != nil {
				continue
			}
			for _, kv := range info {
				if a, ok := bytes.CutPrefix(kv, []byte("alias=")); ok && !bytes.ContainsAny(a, "*?[:") {
					idx.aliases[ModName(string(a))] = append(idx.aliases[ModName(string(a))], m)
				}
			}
		}
		for _, ms := range idx.aliases {
			sort.Strings(ms)
		}
	}
	return idx.aliases[name]
}

// Closure returns the modules to load for the wanted ones, each after its
// dependencies. A wanted module that is neither a module nor built in is
// an error (a typo, or a driver the kernel dropped); a soft dependency
// that is missing is skipped, as modprobe does.
func (idx *Modules) Closure(wanted []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, required bool) error
	visit = func(name string, required bool) error {
		if idx.builtin[name] || state[name] == 2 {
			return nil
		}
		if state[name] == 1 {
			return fmt.Errorf("module dependency cycle through %s", name)
		}
		if _, ok := idx.path[name]; !ok {
			if required {
				return fmt.Errorf("module %s: not in this kernel, as a module or built in", name)
			}
			return nil
		}
		state[name] = 1
		hard, soft, err := idx.deps(name)
		if err != nil {
			return err
		}
		for _, s := range soft {
			for _, d := range idx.resolve(s) {
				if err := visit(d, false); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
		}
		for _, d := range hard {
			if err := visit(d, true); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, w := range wanted {
		if err := visit(ModName(w), true); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ParseModuleList reads a module list: names separated by spaces or
// lines, '#' comments.
func ParseModuleList(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		out = append(out, strings.Fields(line)...)
	}
	return out
}

// Path is the file of a module the index knows ("" for none).
func (idx *Modules) Path(name string) string { return idx.path[ModName(name)] }
