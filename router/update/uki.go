package update

import (
	"debug/pe"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Section is the PE section of the UKI that names its version, written by
// mkimage: {"version": ..., "build_time": ...}.
const Section = ".routerd"

// Info is what an update says of itself.
type Info struct {
	Version   string    `json:"version"`
	BuildTime time.Time `json:"build_time"`
}

// Size bounds of an update: a UKI holds a kernel and an initramfs, so far
// 16 MiB; anything under 1 MiB is a truncated upload.
const (
	MinSize = 1 << 20
	MaxSize = 64 << 20
)

// Inspect checks that r is a unified kernel image routerd can boot (a PE
// file with the stub's .linux, .initrd and .cmdline sections and
// routerd's own) and returns what it says of itself.
func Inspect(r io.ReaderAt, size int64) (Info, error) {
	f, err := pe.NewFile(r)
	if err != nil {
		return Info{}, fmt.Errorf("not a PE/EFI executable: %w", err)
	}
	defer f.Close()
	for _, name := range []string{".linux", ".initrd", ".cmdline", Section} {
		if f.Section(name) == nil {
			return Info{}, fmt.Errorf("not a routerd image: no %s section", name)
		}
	}
	for _, s := range f.Sections {
		// A section whose bytes run past the file: truncated or patched.
		if end := int64(s.Offset) + int64(s.Size); end > size {
			return Info{}, fmt.Errorf("section %s unreadable: it ends at byte %d of %d (truncated?)", s.Name, end, size)
		}
	}
	data, err := f.Section(Section).Data()
	if err != nil {
		return Info{}, fmt.Errorf("read %s: %w", Section, err)
	}
	var info Info
	// The section is padded to its alignment with NULs.
	for len(data) > 0 && data[len(data)-1] == 0 {
		data = data[:len(data)-1]
	}
	if err := json.Unmarshal(data, &info); err != nil || info.Version == "" {
		return Info{}, fmt.Errorf("%s section: not a version: %q", Section, data)
	}
	return info, nil
}
