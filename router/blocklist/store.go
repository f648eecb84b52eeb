package blocklist

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/routerd/routerd/internal/domainset"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/internal/iprange"
	"golang.org/x/sys/unix"
)

// saved is a list's last good content as kept in state_dir, with what is
// known of it.
type saved struct {
	Meta    meta
	V4      []iprange.R4
	V6      []iprange.R6
	Domains []string
	Block   *blockSets // a DNS block list's (then nothing else is set)
}

// blockSets are a DNS block list's names and exceptions.
type blockSets struct {
	Names, Except domainset.Set
}

type meta struct {
	Validators  validators `json:"validators"`
	Format      string     `json:"format"`
	Entries     int        `json:"entries"`
	Lines       int        `json:"lines"`
	Rejected    int        `json:"rejected"`
	Refused     int        `json:"refused"`
	LastSuccess time.Time  `json:"last_success"`
}

const (
	magic      = "RDBL1\n"
	magicBlock = "RDBK1\n" // a block list: the names' and exceptions' hashes
)

func paths(dir, name string) (data, metaPath string) {
	return filepath.Join(dir, name+".list"), filepath.Join(dir, name+".json")
}

// save writes the list atomically: ranges in 8- or 32-byte records, then
// the domains a line each. The metadata goes after it, so a crash between
// the two leaves an older metadata beside a newer list, never the reverse.
func save(dir, name string, s *saved) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, metaPath := paths(dir, name)
	var buf []byte
	if s.Block != nil {
		names, _ := s.Block.Names.MarshalBinary()
		except, _ := s.Block.Except.MarshalBinary()
		buf = make([]byte, 0, len(magicBlock)+16+len(names)+len(except))
		buf = append(buf, magicBlock...)
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(names)))
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(except)))
		buf = append(append(buf, names...), except...)
		return saveFiles(dir, data, metaPath, buf, s.Meta)
	}
	buf = make([]byte, 0, len(magic)+16+8*len(s.V4)+32*len(s.V6))
	buf = append(buf, magic...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(s.V4)))
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(s.V6)))
	for _, r := range s.V4 {
		buf = binary.BigEndian.AppendUint32(buf, r.Lo)
		buf = binary.BigEndian.AppendUint32(buf, r.Hi)
	}
	for _, r := range s.V6 {
		buf = append(append(buf, r.Lo[:]...), r.Hi[:]...)
	}
	for _, d := range s.Domains {
		buf = append(append(buf, d...), '\n')
	}
	return saveFiles(dir, data, metaPath, buf, s.Meta)
}

func saveFiles(dir, data, metaPath string, buf []byte, m meta) error {
	if err := fits(dir, data, len(buf)); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(data, buf, 0o600); err != nil {
		return err
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	return atomicfile.WriteFile(metaPath, mb, 0o600)
}

// keepFree is what a saved list must leave free on state_dir's file system
// (the image's data partition also holds the config, leases, keys and the
// boot log).
const keepFree = 1 << 20

// fits checks that n bytes, replacing the file at path, leave keepFree on
// dir's file system.
func fits(dir, path string, n int) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil // unknown: try
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if fi, err := os.Stat(path); err == nil {
		free += fi.Size() // replaced
	}
	if int64(n) > free-keepFree {
		return fmt.Errorf("not kept: %d bytes would leave %s with less than %d KiB free (the list stays applied until the next restart)", n, dir, keepFree>>10)
	}
	return nil
}

// load reads a saved list; a missing one is (nil, nil).
func load(dir, name string) (*saved, error) {
	data, metaPath := paths(dir, name)
	f, err := os.Open(data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head := make([]byte, len(magic)+16)
	if _, err := io.ReadFull(br, head); err != nil || (string(head[:len(magic)]) != magic && string(head[:len(magic)]) != magicBlock) {
		return nil, fmt.Errorf("%s: not a saved list", data)
	}
	if string(head[:len(magic)]) == magicBlock {
		s, err := loadBlock(br, head[len(magic):])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", data, err)
		}
		loadMeta(metaPath, s)
		return s, nil
	}
	n4 := binary.BigEndian.Uint64(head[len(magic):])
	n6 := binary.BigEndian.Uint64(head[len(magic)+8:])
	if n4 > 1<<28 || n6 > 1<<26 {
		return nil, fmt.Errorf("%s: implausible sizes", data)
	}
	s := &saved{V4: make([]iprange.R4, n4), V6: make([]iprange.R6, n6)}
	var rec [32]byte
	for i := range s.V4 {
		if _, err := io.ReadFull(br, rec[:8]); err != nil {
			return nil, fmt.Errorf("%s: truncated", data)
		}
		s.V4[i] = iprange.R4{Lo: binary.BigEndian.Uint32(rec[:]), Hi: binary.BigEndian.Uint32(rec[4:])}
	}
	for i := range s.V6 {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return nil, fmt.Errorf("%s: truncated", data)
		}
		copy(s.V6[i].Lo[:], rec[:16])
		copy(s.V6[i].Hi[:], rec[16:])
	}
	for {
		line, err := br.ReadString('\n')
		if len(line) > 1 {
			s.Domains = append(s.Domains, line[:len(line)-1])
		}
		if err != nil {
			break
		}
	}
	loadMeta(metaPath, s)
	return s, nil
}

func loadMeta(metaPath string, s *saved) {
	if mb, err := os.ReadFile(metaPath); err == nil {
		// A corrupt record of the last download only loses its dates
		// and validators: the next refresh downloads in full.
		_ = json.Unmarshal(mb, &s.Meta)
	}
}

// loadBlock reads a block list's sets after its magic; sizes holds their
// byte lengths.
func loadBlock(r io.Reader, sizes []byte) (*saved, error) {
	nn, ne := binary.BigEndian.Uint64(sizes), binary.BigEndian.Uint64(sizes[8:])
	if nn > 8<<27 || ne > 8<<27 {
		return nil, errors.New("implausible sizes")
	}
	b := make([]byte, nn+ne)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, errors.New("truncated")
	}
	bs := &blockSets{}
	if err := errors.Join(bs.Names.UnmarshalBinary(b[:nn]), bs.Except.UnmarshalBinary(b[nn:])); err != nil {
		return nil, err
	}
	return &saved{Block: bs}, nil
}
