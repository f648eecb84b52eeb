package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeUKI is a PE file with the sections of a routerd image, padded to
// about size bytes (in .initrd).
func fakeUKI(t *testing.T, version string, size int) []byte {
	return fakeUKIBuilt(t, version, "2026-11-30T12:00:00Z", size)
}

func fakeUKIBuilt(t *testing.T, version, built string, size int) []byte {
	t.Helper()
	info := fmt.Sprintf(`{"version":%q,"build_time":%q}`, version, built)
	secs := []struct {
		name string
		data []byte
	}{
		{".osrel", []byte("ID=routerd\n")},
		{".cmdline", []byte("console=ttyS0\n")},
		{".linux", bytes.Repeat([]byte{0x90}, 4096)},
		{".initrd", bytes.Repeat([]byte{0x1f}, max(size-8192, 512))},
		{Section, []byte(info)},
	}
	var b bytes.Buffer
	dos := make([]byte, 64)
	copy(dos, "MZ")
	binary.LittleEndian.PutUint32(dos[0x3c:], 64)
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	coff := make([]byte, 20)
	binary.LittleEndian.PutUint16(coff[0:], 0x8664)
	binary.LittleEndian.PutUint16(coff[2:], uint16(len(secs)))
	b.Write(coff)
	dataAt := 64 + 4 + 20 + 40*len(secs)
	var data []byte
	for _, s := range secs {
		h := make([]byte, 40)
		copy(h, s.name)
		binary.LittleEndian.PutUint32(h[8:], uint32(len(s.data)))
		binary.LittleEndian.PutUint32(h[12:], uint32(0x1000+len(data)))
		binary.LittleEndian.PutUint32(h[16:], uint32(len(s.data)))
		binary.LittleEndian.PutUint32(h[20:], uint32(dataAt+len(data)))
		b.Write(h)
		data = append(data, s.data...)
	}
	b.Write(data)
	return b.Bytes()
}

func TestInspect(t *testing.T) {
	img := fakeUKI(t, "v2", 2<<20)
	info, err := Inspect(bytes.NewReader(img), int64(len(img)))
	if err != nil || info.Version != "v2" || info.BuildTime.IsZero() {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	if _, err := Inspect(bytes.NewReader(img[:len(img)/2]), int64(len(img)/2)); err == nil {
		t.Error("a truncated image passed")
	}
	if _, err := Inspect(bytes.NewReader(bytes.Repeat([]byte("x"), 4096)), 4096); err == nil {
		t.Error("garbage passed")
	}
	noInfo := bytes.Replace(img, []byte(Section), []byte(".rdata\x00\x00"), 1)
	if _, err := Inspect(bytes.NewReader(noInfo), int64(len(noInfo))); err == nil || !strings.Contains(err.Error(), Section) {
		t.Errorf("an image without %s: %v", Section, err)
	}
}

type machine struct {
	t     *testing.T
	slots *Slots
}

// newMachine is a fresh image: slot A on the ESP and as the fallback,
// the firmware's own boot entry (the disk's fallback path) booted.
func newMachine(t *testing.T) *machine {
	dir := t.TempDir()
	s := &Slots{ESP: filepath.Join(dir, "esp"), Vars: Vars{Dir: filepath.Join(dir, "efivars")}, State: filepath.Join(dir, "state"),
		Part: Partition{Number: 1, Start: 2048, Size: 131072, GUID: [16]byte{1, 2, 3}}}
	for _, d := range []string{s.Vars.Dir, s.State, filepath.Join(s.ESP, "EFI/BOOT"), filepath.Join(s.ESP, slotDir)} {
		os.MkdirAll(d, 0o755)
	}
	v1 := fakeUKI(t, "v1", 2<<20)
	os.WriteFile(s.path(SlotFile(SlotA)), v1, 0o644)
	os.WriteFile(s.path(fallbackPath), v1, 0o644)
	s.Vars.SetBootEntry(1, LoadOption{Active: true, Description: "UEFI Misc Device", Path: []byte{0x7f, 0xff, 4, 0}})
	s.Vars.SetBootOrder([]uint16{1})
	m := &machine{t: t, slots: s}
	m.boot()
	return m
}

// boot is what the firmware does: BootNext once, else the first of
// BootOrder.
func (m *machine) boot() {
	v := m.slots.Vars
	n, ok := v.BootNext()
	if ok {
		v.remove("BootNext")
	} else {
		order, _ := v.BootOrder()
		n = order[0]
	}
	v.set("BootCurrent", binary.LittleEndian.AppendUint16(nil, n))
}

func (m *machine) versions() (running, committed string) {
	st := m.slots.Status()
	for _, s := range st.Slots {
		if s.Running {
			running = s.Name + " " + s.Version
		}
		if s.Committed {
			committed = s.Name + " " + s.Version
		}
	}
	return running, committed
}

func TestUpdateCommitAndRollback(t *testing.T) {
	m := newMachine(t)
	s := m.slots
	if r, c := m.versions(); r != "A v1" || c != "A v1" {
		t.Fatalf("fresh image: running %q committed %q", r, c)
	}
	v2 := fakeUKI(t, "v2", 3<<20)
	var steps []string
	slot, info, err := s.Install(bytes.NewReader(v2), Options{WANWasUp: true}, func(s string) { steps = append(steps, s) })
	if err != nil || slot != SlotB || info.Version != "v2" {
		t.Fatalf("Install = %s %+v %v", slot, info, err)
	}
	if len(steps) < 3 {
		t.Errorf("progress: %q", steps)
	}
	if st := s.Status(); st.Attempt == nil || st.Attempt.Slot != SlotB || st.Attempt.Version != "v2" {
		t.Errorf("attempt %+v", st.Attempt)
	}
	order, _ := s.Vars.BootOrder()
	ents, _, _ := s.entries()
	if want := []uint16{ents[SlotA], ents[SlotB], 1}; !slices.Equal(order, want) {
		t.Errorf("BootOrder %04X, want %04X: the committed slot first", order, want)
	}

	m.boot()
	if r, c := m.versions(); r != "B v2" || c != "A v1" {
		t.Errorf("after the reboot: running %q committed %q, want B v2 on probation, A committed", r, c)
	}
	if err := s.Commit(SlotB); err != nil {
		t.Fatal(err)
	}
	if fb, _ := os.ReadFile(s.path(fallbackPath)); !bytes.Equal(fb, v2) {
		t.Error("the fallback path is not the committed slot")
	}
	m.boot()
	if r, c := m.versions(); r != "B v2" || c != "B v2" {
		t.Errorf("after commit and a reboot: running %q committed %q", r, c)
	}
	if st := s.Status(); st.Attempt != nil || st.Last == nil || st.Last.Outcome != "committed" || st.Last.Version != "v2" {
		t.Errorf("status after commit: %+v %+v", st.Attempt, st.Last)
	}

	// A bad v3 into slot A, not committed: the next boot is B again.
	if _, _, err := s.Install(bytes.NewReader(fakeUKI(t, "v3", 2<<20)), Options{}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	m.boot()
	if r, _ := m.versions(); r != "A v3" {
		t.Fatalf("the new slot did not boot: %q", r)
	}
	if _, _, err := s.Install(bytes.NewReader(v2), Options{}, func(string) {}); !errors.Is(err, ErrRefused) {
		t.Errorf("an update while on probation: %v, want refused (it would overwrite the committed slot)", err)
	}
	s.RolledBack("component lan failed")
	m.boot()
	if r, c := m.versions(); r != "B v2" || c != "B v2" {
		t.Errorf("after the rollback reboot: running %q committed %q, want B v2", r, c)
	}
	if st := s.Status(); st.Last == nil || st.Last.Outcome != "rolled back" || st.Last.Reason != "component lan failed" {
		t.Errorf("last %+v", st.Last)
	}
}

func TestRefusedUploadsChangeNothing(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v2 := fakeUKI(t, "v2", 2<<20)
	sum := sha256.Sum256(v2)
	sig := ed25519.Sign(priv, sum[:])
	corrupt := slices.Clone(v2)
	corrupt[len(corrupt)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		img  []byte
		opt  Options
		want string
	}{
		{"truncated", v2[:512<<10], Options{}, "truncated"},
		{"truncated mid-section", v2[:len(v2)-100], Options{}, "unreadable"},
		{"wrong sha256", v2, Options{SHA256: strings.Repeat("ab", 32)}, "sha256"},
		{"corrupted, its sha256 given", corrupt, Options{SHA256: hex.EncodeToString(sum[:])}, "sha256"},
		{"unsigned with a key", v2, Options{Key: pub}, "unsigned"},
		{"corrupted, signed", corrupt, Options{Key: pub, Signature: sig}, "signature"},
		{"not an image", bytes.Repeat([]byte("x"), 2<<20), Options{}, "not a PE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t)
			s := m.slots
			before, _ := os.ReadDir(s.Vars.Dir)
			_, _, err := s.Install(bytes.NewReader(tc.img), tc.opt, func(string) {})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Install: %v, want refused for %q", err, tc.want)
			}
			after, _ := os.ReadDir(s.Vars.Dir)
			if len(after) != len(before) {
				t.Errorf("EFI variables changed: %d -> %d", len(before), len(after))
			}
			left, _ := os.ReadDir(s.path(slotDir))
			if len(left) != 1 {
				t.Errorf("the ESP holds %d files in %s, want slot A only", len(left), slotDir)
			}
			if st := s.Status(); st.Attempt != nil {
				t.Errorf("an attempt was recorded: %+v", st.Attempt)
			}
		})
	}
	m := newMachine(t)
	if _, _, err := m.slots.Install(bytes.NewReader(v2), Options{Key: pub, Signature: sig, SHA256: hex.EncodeToString(sum[:])}, func(string) {}); err != nil {
		t.Errorf("a signed upload with its sha256: %v", err)
	}
}

func TestLoadOptionRoundTrip(t *testing.T) {
	p := Partition{Number: 1, Start: 2048, Size: 4096, GUID: [16]byte{0xde, 0xad}}
	lo := LoadOption{Active: true, Description: "routerd B", Path: devicePath(p, `\EFI\routerd\B.efi`)}
	got, err := parseLoadOption(lo.marshal())
	if err != nil || got.Description != lo.Description || !got.Active || !bytes.Equal(got.Path, lo.Path) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	// HD node: type 4 subtype 1, 42 bytes; then the file path node.
	if lo.Path[0] != 4 || lo.Path[1] != 1 || lo.Path[2] != 42 || lo.Path[42] != 4 || lo.Path[43] != 4 {
		t.Errorf("device path % x", lo.Path[:48])
	}
}

// The firmware's side, for the fake machine.

func (v Vars) remove(name string) error {
	p := v.path(name)
	if err := clearImmutable(p); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete EFI variable %s: %w", name, err)
	}
	return nil
}

// BootNext returns the pending one-time entry, if any.
func (v Vars) BootNext() (uint16, bool) {
	b, err := v.get("BootNext")
	if err != nil || len(b) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(b), true
}

// TestDowngradeRefused: a build older than the committed one is refused
// and nothing is written; --allow-downgrade (the console's) installs it.
func TestDowngradeRefused(t *testing.T) {
	m := newMachine(t)
	s := m.slots
	old := fakeUKIBuilt(t, "v0", "2025-06-01T12:00:00Z", 2<<20)
	_, _, err := s.Install(bytes.NewReader(old), Options{}, func(string) {})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "older than the committed v1") {
		t.Fatalf("installing an older build: %v, want refused as older than v1", err)
	}
	if _, err := os.Stat(s.path(SlotFile(SlotB))); err == nil {
		t.Error("the refused build was written to slot B")
	}
	if _, ok := s.Vars.BootNext(); ok {
		t.Error("BootNext set for a refused build")
	}
	slot, info, err := s.Install(bytes.NewReader(old), Options{AllowDowngrade: true}, func(string) {})
	if err != nil || slot != SlotB || info.Version != "v0" {
		t.Fatalf("with AllowDowngrade: %s %+v %v", slot, info, err)
	}
}

// TestCorruptRecord: with the update record unreadable, an upload is
// refused (its probation guard would be blind) and nothing written; a
// rollback is still recorded, with the reason.
func TestCorruptRecord(t *testing.T) {
	m := newMachine(t)
	s := m.slots
	if err := os.WriteFile(filepath.Join(s.State, stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Install(bytes.NewReader(fakeUKI(t, "v2", 2<<20)), Options{}, func(string) {})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("an upload with the record corrupt: %v, want refused", err)
	}
	if _, err := os.Stat(s.path(SlotFile(SlotB))); err == nil {
		t.Error("slot B written")
	}
	if err := s.RolledBack("the watchdog fired"); err != nil {
		t.Fatal(err)
	}
	rec, err := Load(s.State)
	if err != nil || rec.Last == nil || !strings.Contains(rec.Last.Reason, "the watchdog fired") {
		t.Errorf("after a rollback with the record corrupt: %+v, %v", rec.Last, err)
	}
}
