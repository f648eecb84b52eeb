package update

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf16"
)

// Partition is what a boot entry's HD() node names.
type Partition struct {
	Number      uint32
	Start, Size uint64   // in 512-byte LBAs
	GUID        [16]byte // the partition's unique GUID, as stored in the GPT
}

// FindPartition reads the GPT of disk (a device or an image file) and
// returns the partition with the given name.
func FindPartition(disk io.ReaderAt, name string) (Partition, error) {
	const lba = 512
	hdr := make([]byte, 92)
	if _, err := disk.ReadAt(hdr, lba); err != nil {
		return Partition{}, fmt.Errorf("read GPT header: %w", err)
	}
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return Partition{}, errors.New("no GPT")
	}
	entriesLBA := binary.LittleEndian.Uint64(hdr[72:])
	count := binary.LittleEndian.Uint32(hdr[80:])
	size := binary.LittleEndian.Uint32(hdr[84:])
	if size < 128 || count > 1024 {
		return Partition{}, fmt.Errorf("odd GPT: %d entries of %d bytes", count, size)
	}
	ents := make([]byte, int(count)*int(size))
	if _, err := disk.ReadAt(ents, int64(entriesLBA)*lba); err != nil {
		return Partition{}, fmt.Errorf("read GPT entries: %w", err)
	}
	for i := range int(count) {
		e := ents[i*int(size):][:size]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue // unused
		}
		u := make([]uint16, 36)
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		n := 0
		for n < len(u) && u[n] != 0 {
			n++
		}
		if string(utf16.Decode(u[:n])) != name {
			continue
		}
		p := Partition{Number: uint32(i + 1), Start: binary.LittleEndian.Uint64(e[32:])}
		p.Size = binary.LittleEndian.Uint64(e[40:]) - p.Start + 1
		copy(p.GUID[:], e[16:32])
		return p, nil
	}
	return Partition{}, fmt.Errorf("no GPT partition named %q", name)
}

// FindPartitionOn is FindPartition on the disk at path.
func FindPartitionOn(path, name string) (Partition, error) {
	f, err := os.Open(path)
	if err != nil {
		return Partition{}, err
	}
	defer f.Close()
	return FindPartition(f, name)
}
