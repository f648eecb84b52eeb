package vm

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// The host and the guest's agent talk over one virtio-serial port, one
// command at a time: the host writes a Request as a JSON line; the agent
// answers with frames (a kind byte, a big-endian uint32 length, the
// payload): output as the command writes it, then its Result.

// PortName is the virtio-serial port's name (/sys/class/virtio-ports/*/name).
const PortName = "routerd.lab"

// Request is a command for the guest to run.
type Request struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"` // the whole environment
	Dir  string   `json:"dir"`
}

// Result is how a command ended.
type Result struct {
	Code  int    `json:"code"`            // exit status; -1 when it did not exit normally
	Error string `json:"error,omitempty"` // why it could not run, or the signal
}

const (
	frameOutput byte = 'o'
	frameResult byte = 'x'
	frameReady  byte = 'r' // the agent is up (sent once, unasked)
)

// maxFrame bounds a frame the reader accepts.
const maxFrame = 1 << 20

// writeFrame writes a frame in one Write, so that frames from concurrent
// writers on a locked writer never interleave.
func writeFrame(w io.Writer, kind byte, payload []byte) error {
	b := make([]byte, 5+len(payload))
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	copy(b[5:], payload)
	_, err := w.Write(b)
	return err
}

func newFrameReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("vm: frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return hdr[0], b, nil
}

// frameWriter turns writes into output frames.
type frameWriter struct {
	w    io.Writer
	kind byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		if err := writeFrame(f.w, f.kind, p[:n]); err != nil {
			return 0, err
		}
		p = p[n:]
	}
	return total, nil
}

func writeResult(w io.Writer, res Result) error {
	b, _ := json.Marshal(res)
	return writeFrame(w, frameResult, b)
}
