package update

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// globalGUID is EFI_GLOBAL_VARIABLE, the vendor of the Boot* variables.
const globalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Attributes of the boot variables: non-volatile, boot service and
// runtime access.
const varAttrs = 0x7

const efivarsDir = "/sys/firmware/efi/efivars"

// Vars reads and writes UEFI variables through efivarfs.
type Vars struct {
	Dir string // "" means /sys/firmware/efi/efivars
}

func (v Vars) path(name string) string {
	dir := v.Dir
	if dir == "" {
		dir = efivarsDir
	}
	return filepath.Join(dir, name+"-"+globalGUID)
}

// get returns a global variable's data (without efivarfs' attribute
// word); a missing variable is os.ErrNotExist.
func (v Vars) get(name string) ([]byte, error) {
	b, err := os.ReadFile(v.path(name))
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("EFI variable %s: %d bytes", name, len(b))
	}
	return b[4:], nil
}

// set writes a global variable in one write, as efivarfs requires.
// Existing variables are immutable files until the flag is cleared.
func (v Vars) set(name string, data []byte) error {
	p := v.path(name)
	if err := clearImmutable(p); err != nil {
		return fmt.Errorf("set EFI variable %s: clear its immutable flag: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("set EFI variable %s: %w", name, err)
	}
	buf := binary.LittleEndian.AppendUint32(nil, varAttrs)
	_, err = f.Write(append(buf, data...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("set EFI variable %s: %w", name, err)
	}
	return nil
}

// clearImmutable drops efivarfs' immutable flag (FS_IMMUTABLE_FL), which
// it sets on every variable so that rm -rf cannot brick a machine.
func clearImmutable(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new variable
	}
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil // a file system without flags has no immutable one
	}
	if err != nil || flags&fsImmutableFL == 0 {
		return err
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL))
}

// BootCurrent is the boot entry the firmware started this boot from.
func (v Vars) BootCurrent() (uint16, error) {
	b, err := v.get("BootCurrent")
	if err != nil {
		return 0, err
	}
	if len(b) != 2 {
		return 0, fmt.Errorf("BootCurrent: %d bytes", len(b))
	}
	return binary.LittleEndian.Uint16(b), nil
}

// BootOrder is the firmware's order of boot entries.
func (v Vars) BootOrder() ([]uint16, error) {
	b, err := v.get("BootOrder")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint16
	for i := 0; i+1 < len(b); i += 2 {
		out = append(out, binary.LittleEndian.Uint16(b[i:]))
	}
	return out, nil
}

func (v Vars) SetBootOrder(order []uint16) error {
	var b []byte
	for _, n := range order {
		b = binary.LittleEndian.AppendUint16(b, n)
	}
	return v.set("BootOrder", b)
}

// SetBootNext makes the firmware boot entry n once, at the next boot.
func (v Vars) SetBootNext(n uint16) error {
	return v.set("BootNext", binary.LittleEndian.AppendUint16(nil, n))
}

// BootEntries reads every Boot#### variable.
func (v Vars) BootEntries() (map[uint16]LoadOption, error) {
	dir := v.Dir
	if dir == "" {
		dir = efivarsDir
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[uint16]LoadOption{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), "-"+globalGUID)
		if !ok || len(name) != 8 || !strings.HasPrefix(name, "Boot") {
			continue
		}
		n, err := strconv.ParseUint(name[4:], 16, 16)
		if err != nil {
			continue
		}
		b, err := v.get(name)
		if err != nil {
			continue
		}
		if lo, err := parseLoadOption(b); err == nil {
			out[uint16(n)] = lo
		}
	}
	return out, nil
}

// SetBootEntry writes Boot#### n.
func (v Vars) SetBootEntry(n uint16, lo LoadOption) error {
	return v.set(fmt.Sprintf("Boot%04X", n), lo.marshal())
}

// LoadOption is an EFI_LOAD_OPTION: a boot entry.
type LoadOption struct {
	Active      bool
	Description string
	Path        []byte // the device path list, raw
}

const loadOptionActive = 0x1

func (lo LoadOption) marshal() []byte {
	attrs := uint32(0)
	if lo.Active {
		attrs |= loadOptionActive
	}
	b := binary.LittleEndian.AppendUint32(nil, attrs)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(lo.Path)))
	b = append(b, ucs2(lo.Description)...)
	return append(b, lo.Path...)
}

func parseLoadOption(b []byte) (LoadOption, error) {
	if len(b) < 6 {
		return LoadOption{}, errors.New("short load option")
	}
	attrs := binary.LittleEndian.Uint32(b)
	plen := int(binary.LittleEndian.Uint16(b[4:]))
	rest := b[6:]
	var desc []uint16
	for {
		if len(rest) < 2 {
			return LoadOption{}, errors.New("unterminated description")
		}
		c := binary.LittleEndian.Uint16(rest)
		rest = rest[2:]
		if c == 0 {
			break
		}
		desc = append(desc, c)
	}
	if len(rest) < plen {
		return LoadOption{}, errors.New("short device path")
	}
	return LoadOption{Active: attrs&loadOptionActive != 0, Description: string(utf16.Decode(desc)), Path: slices.Clone(rest[:plen])}, nil
}

// ucs2 is s in UTF-16LE with a terminating NUL.
func ucs2(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, 0, 0)
}

// devicePath is HD(part)/File(file)/End: the short form a boot manager
// writes (efibootmgr does the same), which the firmware expands by
// finding the partition by its GUID.
func devicePath(p Partition, file string) []byte {
	hd := []byte{0x04, 0x01, 42, 0}
	hd = binary.LittleEndian.AppendUint32(hd, p.Number)
	hd = binary.LittleEndian.AppendUint64(hd, p.Start)
	hd = binary.LittleEndian.AppendUint64(hd, p.Size)
	hd = append(hd, p.GUID[:]...)
	hd = append(hd, 0x02, 0x02) // GPT, GUID signature
	name := ucs2(file)
	fp := []byte{0x04, 0x04}
	fp = binary.LittleEndian.AppendUint16(fp, uint16(4+len(name)))
	fp = append(fp, name...)
	return append(append(hd, fp...), 0x7f, 0xff, 0x04, 0x00)
}

// fsImmutableFL is FS_IMMUTABLE_FL from linux/fs.h.
const fsImmutableFL = 0x10
