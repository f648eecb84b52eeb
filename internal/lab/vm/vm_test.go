package vm

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// The agent's side of the protocol, over a pipe: ready, then each
// command's output and its exit status; a bad request is answered, not
// fatal.
func TestServe(t *testing.T) {
	hostR, guestW := io.Pipe()
	guestR, hostW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Serve(struct {
			io.Reader
			io.Writer
		}{guestR, guestW})
	}()
	v := &VM{conn: nil}
	r := newFrameReader(hostR)
	if kind, _, err := readFrame(r); err != nil || kind != frameReady {
		t.Fatalf("first frame %q, %v; want ready", kind, err)
	}
	v.r = r
	send := func(line string) (string, Result) {
		t.Helper()
		if _, err := io.WriteString(hostW, line+"\n"); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		res, err := v.readResult(&out)
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), res
	}
	if out, res := send(`{"argv":["sh","-c","echo one; echo two >&2; exit 3"]}`); out != "one\ntwo\n" || res.Code != 3 {
		t.Errorf("sh: %q, %+v; want one, two and exit 3", out, res)
	}
	if out, res := send(`{"argv":["pwd"],"dir":"/"}`); out != "/\n" || res.Code != 0 {
		t.Errorf("pwd in /: %q, %+v", out, res)
	}
	if _, res := send(`{"argv":["/nonexistent"]}`); res.Code != -1 || !strings.Contains(res.Error, "no such file") {
		t.Errorf("a missing program: %+v", res)
	}
	if _, res := send(`not json`); res.Code != -1 || !strings.Contains(res.Error, "bad request") {
		t.Errorf("a bad request: %+v", res)
	}
	hostW.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after the host closed: %v", err)
	}
}
