package vm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Serve is the guest's agent: it says it is ready, then runs each Request
// read from port and answers with its output and Result, until port
// closes. A command runs in its own process group, which is killed when
// it exits so that nothing it started outlives it.
func Serve(port io.ReadWriter) error {
	w := &lockedWriter{w: port}
	if err := writeFrame(w, frameReady, nil); err != nil {
		return err
	}
	r := bufio.NewReader(port)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var req Request
		if err := json.Unmarshal(line, &req); err != nil || len(req.Argv) == 0 {
			if err := writeResult(w, Result{Code: -1, Error: fmt.Sprintf("bad request %q", line)}); err != nil {
				return err
			}
			continue
		}
		if err := writeResult(w, run(req, frameWriter{w: w, kind: frameOutput})); err != nil {
			return err
		}
	}
}

func run(req Request, out io.Writer) Result {
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env, cmd.Dir = req.Env, req.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A daemon the command left behind may hold its output open: stop
	// waiting for that shortly after the command itself exits.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return Result{}
	case errors.As(err, &ee) && ee.Exited():
		return Result{Code: ee.ExitCode()}
	default:
		return Result{Code: -1, Error: err.Error()}
	}
}

// lockedWriter keeps frames whole when a command's output is copied by
// more than one goroutine.
type lockedWriter struct {
	w  io.Writer
	mu sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
