package router

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/router/api"
	"github.com/routerd/routerd/router/boot"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/update"
)

// updates serves A/B updates on the image: the upload (routerctl update,
// ssh gw.lan update < routerd.efi) and the slots' status. The probation
// and the commit are init's (router/boot).
type updates struct {
	upload sync.Mutex // one upload at a time

	mu       sync.Mutex
	rebootAt *time.Time
	cancel   func()        // of the scheduled reboot
	slots    *update.Slots // found once: the ESP does not move while running
}

// slotsOf returns the machine's boot slots, looked up (sysfs, the GPT) on
// first use: status asks for them every time it is read.
func (u *updates) slotsOf(stateDir string) (*update.Slots, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.slots == nil || u.slots.State != stateDir {
		s, err := boot.Slots(stateDir)
		if err != nil {
			return nil, err
		}
		u.slots = s
	}
	return u.slots, nil
}

// onImage reports whether routerd runs under its own init, where the boot
// slots are.
func onImage() bool { return os.Getenv(boot.EnvChild) == "1" }

// install takes an upload (routerctl update): the image, its checksum and
// signature, and when to reboot into it.
func (u *updates) install(s *Supervisor, image io.Reader, req api.UpdateRequest) (status.UpdateAnswer, error) {
	var ans status.UpdateAnswer
	if !onImage() {
		return ans, api.Coded(http.StatusConflict, errors.New("updates are for the image (routerd --init): on a host, update its package"))
	}
	if !u.upload.TryLock() {
		return ans, api.Coded(http.StatusConflict, errors.New("another update is being uploaded"))
	}
	defer u.upload.Unlock()
	cfg := s.config()
	opt := update.Options{SHA256: req.SHA256, Key: cfg.Update.Key, WANWasUp: update.WANUp(s.Status()),
		AllowDowngrade: req.AllowDowngrade}
	fail := func(code int, err error) (status.UpdateAnswer, error) {
		// What happened before the refusal goes with it.
		if len(ans.Steps) > 0 {
			err = fmt.Errorf("%s; %w", strings.Join(ans.Steps, "; "), err)
		}
		return ans, api.Coded(code, err)
	}
	if req.Signature != "" {
		b, err := update.ParseSignature(req.Signature)
		if err != nil {
			return fail(http.StatusBadRequest, err)
		}
		opt.Signature = b
	}
	at, err := rebootTime(req.RebootAt, time.Now())
	if err != nil {
		return fail(http.StatusBadRequest, err)
	}
	slots, err := u.slotsOf(cfg.StateDir)
	if err != nil {
		return fail(http.StatusServiceUnavailable, err)
	}
	step := func(msg string) {
		ans.Steps = append(ans.Steps, msg)
		s.log.Info("update: "+msg, "component", "update")
	}
	slot, info, err := slots.Install(image, opt, step)
	if err != nil {
		s.log.Error("update refused", "component", "update", "err", err)
		return fail(http.StatusBadRequest, err)
	}
	ans.Slot, ans.Version = slot, info.Version
	switch {
	case at == nil:
		step("not rebooting (reboot_at=never): the new version starts at the next reboot")
	case !at.After(time.Now()):
		step("rebooting now")
		s.signalInitSoon(boot.RebootSignal) // a second from now: the answer is out by then
	default:
		u.schedule(s, *at)
		ans.RebootAt = at
		step("rebooting at " + at.Format(time.RFC3339))
	}
	return ans, nil
}

func (u *updates) schedule(s *Supervisor, at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rebootAt = &at
	if u.cancel != nil {
		u.cancel()
	}
	u.cancel = s.after(time.Until(at), func() { s.signalInitSoon(boot.RebootSignal) })
}

// rebootTime parses reboot_at: "" or "now", "never", or the next HH:MM.
func rebootTime(s string, now time.Time) (*time.Time, error) {
	switch s {
	case "", "now":
		return &now, nil
	case "never":
		return nil, nil
	}
	t, err := time.ParseInLocation("15:04", s, now.Location())
	if err != nil {
		return nil, fmt.Errorf("reboot_at %q: want HH:MM, now or never", s)
	}
	at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
	if !at.After(now) {
		at = at.AddDate(0, 0, 1)
	}
	return &at, nil
}

// fillStatus adds the boot slots, on the image.
func (u *updates) fillStatus(s *Supervisor, st *status.Status) {
	if !onImage() {
		return
	}
	slots, err := u.slotsOf(s.config().StateDir)
	if err != nil {
		st.Update = &status.Update{Error: err.Error()}
		return
	}
	us := slots.Status()
	u.mu.Lock()
	us.RebootAt = u.rebootAt
	u.mu.Unlock()
	st.Update = &us
}
