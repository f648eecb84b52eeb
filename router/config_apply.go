package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// Changing the config from the LAN (routerctl config apply, over SSH): the
// new file is checked as --check would (nothing changes if it has an
// error), the running one is kept as routerd.toml.prev, and routerd
// reloads. With a confirmation time it rolls back by itself unless
// confirmed in time, like VyOS's commit-confirm: a change that cuts the
// admin off undoes itself. The deadline is kept beside the config
// (routerd.toml.confirm-by), so that a crash or a power cut in between
// still rolls back.

// maxConfigSize bounds an uploaded config.
const maxConfigSize = 1 << 20

// applyDelay lets the answer reach the client (perhaps over an SSH session
// that the reload will end) before the reload starts.
const applyDelay = 300 * time.Millisecond

// The deadline of an unconfirmed config is kept beside the config file
// (routerd.toml.confirm-by), where neither config can move it.
const pendingSuffix = ".confirm-by"

type configApply struct {
	mu       sync.Mutex
	deadline time.Time      // zero: nothing to confirm
	cancel   func()         // of the rollback timer
	rollback *status.Reload // the last rollback
}

// ApplyResult answers routerctl config apply.
type ApplyResult = control.ApplyResult

func (s *Supervisor) prevPath() string { return s.path + ".prev" }

func (s *Supervisor) pendingPath() string { return s.path + pendingSuffix }

// applyConfig checks body, saves it in place of the running config (which
// is kept as .prev) and reloads shortly after answering.
func (s *Supervisor) applyConfig(body []byte, confirm time.Duration) (ApplyResult, int, error) {
	s.apply.mu.Lock()
	defer s.apply.mu.Unlock()
	if !s.apply.deadline.IsZero() {
		return ApplyResult{}, http.StatusConflict, fmt.Errorf("a change is waiting for confirmation until %s: confirm it or let it roll back first",
			s.apply.deadline.Format(time.TimeOnly))
	}
	// Checked where it will live, so that relative paths (authorized_keys)
	// resolve as they will.
	tmp := s.path + ".new"
	if err := atomicfile.WriteFile(tmp, body, 0o600); err != nil {
		return ApplyResult{}, http.StatusInternalServerError, err
	}
	// Gone after the rename below; on any other way out a leftover would
	// only be overwritten by the next apply.
	defer func() { _ = os.Remove(tmp) }()
	next, hash, err := config.LoadWithin(tmp, filepath.Dir(s.path), s.config().StateDir)
	if err != nil {
		return ApplyResult{}, http.StatusUnprocessableEntity, fmt.Errorf("nothing applied: %w", err)
	}
	if err := CheckMachine(next); err != nil {
		return ApplyResult{}, http.StatusUnprocessableEntity, fmt.Errorf("nothing applied: %w", err)
	}
	if err := keepsSigningKey(s.config(), next); err != nil {
		return ApplyResult{}, http.StatusForbidden, fmt.Errorf("nothing applied: %w", err)
	}
	if cur := s.config().Status.Socket; next.Status.Socket != cur {
		return ApplyResult{}, http.StatusConflict, fmt.Errorf("nothing applied: status.socket cannot change on a running router (%s to %s): routerctl and SSH reach it there until a restart; change it on the console and restart",
			cur, next.Status.Socket)
	}
	if hash == s.cur.Load().hash {
		return ApplyResult{Hash: hash, Unchanged: true}, 0, nil
	}
	old, err := os.ReadFile(s.path)
	if err != nil {
		return ApplyResult{}, http.StatusInternalServerError, err
	}
	if err := atomicfile.WriteFile(s.prevPath(), old, 0o600); err != nil {
		return ApplyResult{}, http.StatusInternalServerError, fmt.Errorf("keep the running config: %w", err)
	}
	res := ApplyResult{Hash: hash}
	if confirm > 0 {
		// Written down before the new config is in place: a power cut
		// between the two still rolls back.
		res.ConfirmBy = time.Now().Add(confirm).Truncate(time.Second)
		b, _ := json.Marshal(res.ConfirmBy)
		if err := atomicfile.WriteFile(s.pendingPath(), b, 0o600); err != nil {
			return ApplyResult{}, http.StatusInternalServerError, fmt.Errorf("nothing applied: keep the confirmation deadline: %w", err)
		}
	}
	if err := atomicfile.Rename(tmp, s.path); err != nil {
		return ApplyResult{}, http.StatusInternalServerError, errors.Join(err, s.removePending())
	}
	if confirm > 0 {
		s.armRollbackLocked(res.ConfirmBy)
	}
	s.log.Info("config applied from the control API", "hash", hash, "confirm_by", res.ConfirmBy)
	s.after(applyDelay, func() { _ = s.Reload() }) // Reload logs and records its outcome for status
	return res, 0, nil
}

// keepsSigningKey refuses a config that drops or changes the update signing
// key: whoever can apply configs (an SSH key) could otherwise switch the
// signature check off and install any code. Adding a key is fine; changing
// or removing one is the console's (edit the file, reload).
func keepsSigningKey(cur, next *config.Config) error {
	if cur.Update.Key == nil || bytes.Equal(cur.Update.Key, next.Update.Key) {
		return nil
	}
	if next.Update.Key == nil {
		return errors.New("update.signing_key cannot be removed through the control API (config apply, SSH): on the console, edit the file and reload")
	}
	return errors.New("update.signing_key cannot be changed through the control API (config apply, SSH): on the console, edit the file and reload")
}

// armRollbackLocked rolls back at deadline unless confirmed (the deadline
// is already written down, so that a restart in between honours it).
func (s *Supervisor) armRollbackLocked(deadline time.Time) {
	s.apply.deadline = deadline
	s.apply.cancel = s.after(time.Until(deadline), func() { s.rollback("not confirmed by " + deadline.Format(time.TimeOnly)) })
}

func (s *Supervisor) confirmConfig() error {
	s.apply.mu.Lock()
	defer s.apply.mu.Unlock()
	if s.apply.deadline.IsZero() {
		return errors.New("nothing to confirm")
	}
	s.apply.cancel()
	s.apply.deadline = time.Time{}
	// A deadline left on disk would roll the confirmed change back at
	// the next start.
	if err := s.removePending(); err != nil {
		return fmt.Errorf("confirmed, but: %w", err)
	}
	s.log.Info("config change confirmed")
	return nil
}

// removePending removes the written-down confirmation deadline.
func (s *Supervisor) removePending() error {
	if err := os.Remove(s.pendingPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the confirmation deadline: %w", err)
	}
	return nil
}

// rollback puts the previous config back and reloads.
func (s *Supervisor) rollback(why string) {
	s.apply.mu.Lock()
	if s.apply.deadline.IsZero() {
		s.apply.mu.Unlock()
		return // confirmed meanwhile
	}
	s.apply.deadline = time.Time{}
	err := atomicfile.Rename(s.prevPath(), s.path)
	if perr := s.removePending(); perr != nil {
		s.log.Warn("after the rollback", "err", perr)
	}
	r := &status.Reload{At: time.Now(), Error: why}
	if err != nil {
		r.Error = fmt.Sprintf("%s; restoring %s failed: %v", why, s.prevPath(), err)
	}
	s.apply.rollback = r
	s.apply.mu.Unlock()
	s.log.Warn("config change rolled back", "why", why, "err", err)
	if err == nil {
		// The unconfirmed config may still be starting (waiting for a
		// NIC that its change lost): that start gives way.
		s.preemptStart()
		_ = s.Reload() // it logs and records its outcome for status
	}
}

// resumeConfirm picks up a confirmation deadline from before a restart:
// past, it rolls back now; still ahead, it waits for it again.
func (s *Supervisor) resumeConfirm() {
	b, err := os.ReadFile(s.pendingPath())
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var deadline time.Time
	if err != nil || json.Unmarshal(b, &deadline) != nil {
		deadline = time.Now() // unreadable: the safe side is the old config
	}
	s.apply.mu.Lock()
	s.apply.deadline = deadline
	s.apply.cancel = s.after(max(time.Until(deadline), 0), func() {
		s.rollback("not confirmed by " + deadline.Format(time.TimeOnly) + " (deadline carried over a restart)")
	})
	s.apply.mu.Unlock()
}

func (s *Supervisor) fillConfigStatus(st *status.Status) {
	s.apply.mu.Lock()
	defer s.apply.mu.Unlock()
	if !s.apply.deadline.IsZero() {
		d := s.apply.deadline
		st.ConfirmBy = &d
	}
	st.Rollback = s.apply.rollback
}
