package api

// The control socket: a unix socket only root can reach (directory 0700,
// socket 0600), served by routerd; routerctl's side is control.Client.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
)

// Listen opens the control socket at path. A stale socket left by a crashed
// routerd is replaced; a live one means another routerd runs, which is an
// error rather than a silent takeover.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create control socket dir: %w", err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("chmod control socket dir: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another routerd is running", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	old := syscall.Umask(0o177) // the socket is created 0600, with no window
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket: %w", err)
	}
	return l, nil
}

// Serve serves h on l, in a goroutine of run, until the returned server is
// closed. If serving ends otherwise (the socket failed), onErr hears why.
func Serve(run *lifecycle.Group, l net.Listener, h http.Handler, onErr func(error)) *http.Server {
	// No read or write timeout: an upload (update) and logs -f take as
	// long as they take. A connection idle between requests is closed.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	run.Go(func(context.Context) { // ends when srv is closed
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && onErr != nil {
			onErr(err)
		}
	})
	return srv
}
