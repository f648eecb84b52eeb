package update

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/router/status"
)

// The slots.
const (
	SlotA = "A"
	SlotB = "B"
)

// Where the slots live on the EFI system partition.
const (
	slotDir      = "EFI/routerd"
	fallbackPath = "EFI/BOOT/BOOTX64.EFI"
)

// SlotFile is the path of a slot on the ESP, relative to its root (mkimage
// writes slot A there).
func SlotFile(slot string) string { return slotDir + "/" + slot + ".efi" }

func other(slot string) string {
	if slot == SlotA {
		return SlotB
	}
	return SlotA
}

// Slots is the A/B pair on one machine.
type Slots struct {
	ESP   string    // where the EFI system partition is mounted
	Part  Partition // the ESP, for the boot entries' device paths
	Vars  Vars
	State string // the directory of update.json (state_dir)
}

func (s *Slots) path(rel string) string { return filepath.Join(s.ESP, filepath.FromSlash(rel)) }

func description(slot string) string { return "routerd " + slot }

// entries returns the boot entry numbers of the slots that have one.
func (s *Slots) entries() (map[string]uint16, map[uint16]LoadOption, error) {
	all, err := s.Vars.BootEntries()
	if err != nil {
		return nil, nil, fmt.Errorf("read boot entries: %w", err)
	}
	out := map[string]uint16{}
	for n, lo := range all {
		for _, slot := range []string{SlotA, SlotB} {
			if lo.Description == description(slot) {
				out[slot] = n
			}
		}
	}
	return out, all, nil
}

// Committed is the slot the firmware boots: the first of BootOrder that is
// a slot's entry. Before the first update there are no entries and the
// firmware boots the fallback path, a copy of slot A.
func (s *Slots) Committed() string {
	ents, _, err := s.entries()
	if err != nil {
		return SlotA
	}
	order, _ := s.Vars.BootOrder()
	for _, n := range order {
		for slot, e := range ents {
			if e == n {
				return slot
			}
		}
	}
	return SlotA
}

// Running is the slot this boot came from: BootCurrent's, or the
// committed one when the firmware booted the fallback path.
func (s *Slots) Running() string {
	cur, err := s.Vars.BootCurrent()
	if err == nil {
		if ents, _, err := s.entries(); err == nil {
			for slot, e := range ents {
				if e == cur {
					return slot
				}
			}
		}
	}
	return s.Committed()
}

// Options are the checks an upload must pass.
type Options struct {
	SHA256    string            // hex; "" unchecked
	Signature []byte            // ed25519 over the SHA-256 of the image
	Key       ed25519.PublicKey // when set, unsigned uploads are refused
	WANWasUp  bool
	// AllowDowngrade installs a build older than the committed one
	// (routerctl update --allow-downgrade, on the console only): an old
	// build may have the holes the new one closed.
	AllowDowngrade bool
}

// ErrRefused wraps every reason an upload is not installed.
var ErrRefused = errors.New("update refused")

// Install writes an uploaded image to the slot not running, checks it,
// and makes the firmware boot it once at the next boot (BootNext). Nothing
// is written to a slot, and no variable changes, unless every check
// passes: a refused or interrupted upload leaves the machine as it was.
// step reports progress.
func (s *Slots) Install(r io.Reader, opt Options, step func(string)) (string, Info, error) {
	from := s.Running()
	slot := other(from)
	rec, err := Load(s.State)
	if err != nil {
		// Without the record the probation guard below is blind: a slot
		// on probation could be overwritten by the next upload.
		return "", Info{}, fmt.Errorf("%w: the update record is unreadable (%v); on the console, remove %s to update again", ErrRefused, err, filepath.Join(s.State, stateFile))
	}
	if rec.Attempt != nil && rec.Attempt.Slot == from {
		// The other slot is the committed one: the only way back.
		return "", Info{}, fmt.Errorf("%w: slot %s (%s) is on probation; update again once it is committed or rolled back", ErrRefused, from, rec.Attempt.Version)
	}
	if err := os.MkdirAll(s.path(slotDir), 0o755); err != nil {
		return "", Info{}, err
	}
	tmp := s.path(slotDir + "/" + slot + ".new")
	info, err := s.receive(r, tmp, opt, step)
	if err == nil {
		err = s.checkNotOlder(info, opt.AllowDowngrade)
	}
	if err != nil {
		return "", Info{}, errors.Join(err, removeTemp(tmp))
	}
	if err := atomicfile.Rename(tmp, s.path(SlotFile(slot))); err != nil {
		return "", Info{}, errors.Join(fmt.Errorf("install slot %s: %w", slot, err), removeTemp(tmp))
	}
	step(fmt.Sprintf("written to slot %s (%s)", slot, SlotFile(slot)))
	ents, err := s.ensureEntries(s.Committed())
	if err != nil {
		return "", Info{}, err
	}
	if err := s.Vars.SetBootNext(ents[slot]); err != nil {
		return "", Info{}, err
	}
	order, _ := s.Vars.BootOrder()
	step(fmt.Sprintf("boot entries: slot A Boot%04X, slot B Boot%04X; BootOrder %s", ents[SlotA], ents[SlotB], orderString(order)))
	step(fmt.Sprintf("the next boot starts slot %s once (BootNext=Boot%04X); slot %s stays committed until %s proves healthy", slot, ents[slot], from, info.Version))
	rec.Attempt = &Attempt{Slot: slot, From: from, Info: info, At: time.Now(), WANWasUp: opt.WANWasUp}
	if err := rec.Save(s.State); err != nil {
		return "", Info{}, fmt.Errorf("record the update: %w", err)
	}
	return slot, info, nil
}

// checkNotOlder refuses a build older than the committed slot's, unless
// allowed.
func (s *Slots) checkNotOlder(info Info, allow bool) error {
	f, err := os.Open(s.path(SlotFile(s.Committed())))
	if err != nil {
		return nil // nothing committed to compare with (the first install)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	cur, err := Inspect(f, fi.Size())
	if err != nil || !info.BuildTime.Before(cur.BuildTime) {
		return nil
	}
	if allow {
		return nil
	}
	return fmt.Errorf("%w: %s (built %s) is older than the committed %s (built %s); on the console, --allow-downgrade installs it",
		ErrRefused, info.Version, info.BuildTime.Format(time.RFC3339), cur.Version, cur.BuildTime.Format(time.RFC3339))
}

// receive copies the upload to tmp, durably, and checks it.
func (s *Slots) receive(r io.Reader, tmp string, opt Options, step func(string)) (Info, error) {
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h, &counter{step: step}), io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Info{}, fmt.Errorf("receive: %w", err)
	}
	sum := h.Sum(nil)
	step(fmt.Sprintf("received %.1f MiB, sha256 %x", float64(n)/(1<<20), sum))
	switch {
	case n > MaxSize:
		return Info{}, fmt.Errorf("%w: larger than %d MiB", ErrRefused, MaxSize>>20)
	case n < MinSize:
		return Info{}, fmt.Errorf("%w: %d bytes is not an image (truncated?)", ErrRefused, n)
	}
	if opt.SHA256 != "" {
		want, err := hex.DecodeString(strings.TrimSpace(opt.SHA256))
		if err != nil || !slices.Equal(want, sum) {
			return Info{}, fmt.Errorf("%w: sha256 %x, not the %s given", ErrRefused, sum, opt.SHA256)
		}
		step("sha256 matches")
	}
	if opt.Key != nil {
		if len(opt.Signature) == 0 {
			return Info{}, fmt.Errorf("%w: unsigned, and update.signing_key is set", ErrRefused)
		}
		if !ed25519.Verify(opt.Key, sum, opt.Signature) {
			return Info{}, fmt.Errorf("%w: the signature does not verify with update.signing_key", ErrRefused)
		}
		step("signature good")
	}
	info, err := Inspect(f, n)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	step(fmt.Sprintf("routerd %s, built %s", info.Version, info.BuildTime.Format(time.RFC3339)))
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("sync %s: %w", tmp, err)
	}
	return info, nil
}

// ensureEntries gives both slots a boot entry and makes sure BootOrder
// starts with the committed one, so that a boot without BootNext (the
// rollback) lands there.
func (s *Slots) ensureEntries(committed string) (map[string]uint16, error) {
	ents, all, err := s.entries()
	if err != nil {
		return nil, err
	}
	for _, slot := range []string{SlotA, SlotB} {
		lo := LoadOption{Active: true, Description: description(slot), Path: devicePath(s.Part, `\`+strings.ReplaceAll(SlotFile(slot), "/", `\`))}
		n, ok := ents[slot]
		if ok && slices.Equal(all[n].Path, lo.Path) && all[n].Active {
			continue
		}
		if !ok {
			n = freeEntry(all)
		}
		if err := s.Vars.SetBootEntry(n, lo); err != nil {
			return nil, err
		}
		ents[slot], all[n] = n, lo
	}
	return ents, s.putFirst(ents, committed)
}

// putFirst orders BootOrder: slot first, then the other slot, then the
// firmware's own entries.
func (s *Slots) putFirst(ents map[string]uint16, slot string) error {
	order, err := s.Vars.BootOrder()
	if err != nil {
		return fmt.Errorf("read BootOrder: %w", err)
	}
	want := []uint16{ents[slot], ents[other(slot)]}
	for _, n := range order {
		if !slices.Contains(want, n) {
			want = append(want, n)
		}
	}
	if slices.Equal(order, want) {
		return nil
	}
	return s.Vars.SetBootOrder(want)
}

func freeEntry(all map[uint16]LoadOption) uint16 {
	for n := uint16(0x0A00); ; n++ { // away from the firmware's own numbers
		if _, ok := all[n]; !ok {
			return n
		}
	}
}

// Commit makes slot the one the firmware boots (first in BootOrder) and
// copies it to the fallback path, and records the outcome.
func (s *Slots) Commit(slot string) error {
	if _, err := s.ensureEntries(slot); err != nil {
		return err
	}
	if err := copyFile(s.path(SlotFile(slot)), s.path(fallbackPath)); err != nil {
		return fmt.Errorf("copy slot %s to the fallback path: %w", slot, err)
	}
	rec, err := Load(s.State)
	res := &Result{Outcome: "committed", Slot: slot, At: time.Now()}
	if err != nil {
		res.Reason = fmt.Sprintf("the update record was unreadable (%v) and is written anew", err)
		rec = Record{}
	}
	if a := rec.Attempt; a != nil {
		res.From, res.Info = a.From, a.Info
	}
	rec.Attempt, rec.Last = nil, res
	return rec.Save(s.State)
}

// RolledBack records that the attempt ended without a commit, and why.
func (s *Slots) RolledBack(reason string) error {
	rec, err := Load(s.State)
	if err != nil {
		// What was attempted is lost with the record; that it rolled
		// back, and why, is not.
		rec = Record{Last: &Result{Outcome: "rolled back", At: time.Now(),
			Reason: fmt.Sprintf("%s (the update record was unreadable: %v)", reason, err)}}
		return rec.Save(s.State)
	}
	a := rec.Attempt
	if a == nil {
		return nil
	}
	rec.Last = &Result{Outcome: "rolled back", Slot: a.Slot, From: a.From, Info: a.Info, At: time.Now(), Reason: reason}
	return rec.Save(s.State)
}

// copyFile copies src over dst atomically and durably.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteFrom(dst, in, 0o644)
}

// Status describes the slots and the last update.
func (s *Slots) Status() status.Update {
	var u status.Update
	running, committed := s.Running(), s.Committed()
	for _, slot := range []string{SlotA, SlotB} {
		st := status.Slot{Name: slot, Running: slot == running, Committed: slot == committed}
		if f, err := os.Open(s.path(SlotFile(slot))); err == nil {
			fi, _ := f.Stat()
			if info, err := Inspect(f, fi.Size()); err == nil {
				st.Version, st.BuildTime = info.Version, info.BuildTime
			}
			f.Close()
		}
		u.Slots = append(u.Slots, st)
	}
	rec, err := Load(s.State)
	if err != nil {
		u.Error = err.Error()
	}
	order, err := s.Vars.BootOrder()
	if err != nil {
		u.Error = err.Error()
	}
	_, all, _ := s.entries()
	cur, _ := s.Vars.BootCurrent()
	for _, n := range order {
		e := fmt.Sprintf("Boot%04X %s", n, all[n].Description)
		if n == cur {
			e += " *"
		}
		u.BootOrder = append(u.BootOrder, e)
	}
	if a := rec.Attempt; a != nil {
		u.Attempt = &status.UpdateAttempt{Slot: a.Slot, From: a.From, Version: a.Version, At: a.At, Probation: a.Probation}
	}
	if r := rec.Last; r != nil {
		u.Last = &status.UpdateResult{Outcome: r.Outcome, Slot: r.Slot, From: r.From, Version: r.Version, At: r.At, Reason: r.Reason}
	}
	return u
}

// Healthy says whether the appliance, as its status shows it, is fit to
// commit: ready, every component running, and the WAN up if it was up
// before the update. Otherwise it says what is wrong, for the record of
// a rollback.
func Healthy(st *status.Status, wanWasUp bool) (bool, string) {
	if st.Phase != status.PhaseReady {
		return false, fmt.Sprintf("the appliance is %s, not ready", st.Phase)
	}
	for _, c := range st.Components {
		if c.State != status.Running {
			why := fmt.Sprintf("component %s is %s", c.Name, c.State)
			if c.Error != "" {
				why += ": " + c.Error
			}
			return false, why
		}
	}
	if wanWasUp && !WANUp(st) {
		return false, "the WAN is down (it was up before the update)"
	}
	return true, ""
}

// WANUp says whether the WAN has its address: a DHCP lease, or static.
func WANUp(st *status.Status) bool {
	w := st.WAN
	return w != nil && ((w.DHCP != nil && w.DHCP.State == status.DHCPBound) || (w.Mode == "static" && w.Addr != ""))
}

// counter reports every 4 MiB received.
type counter struct {
	n    int64
	step func(string)
}

func (c *counter) Write(b []byte) (int, error) {
	before := c.n
	c.n += int64(len(b))
	if c.n>>22 != before>>22 {
		c.step(fmt.Sprintf("receiving: %d MiB", c.n>>20))
	}
	return len(b), nil
}

func orderString(order []uint16) string {
	var b strings.Builder
	for i, n := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%04X", n)
	}
	return b.String()
}

// removeTemp removes a half-written slot image: tens of MiB on the EFI
// partition, which the next update needs.
func removeTemp(tmp string) error {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", tmp, err)
	}
	return nil
}
