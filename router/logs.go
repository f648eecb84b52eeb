package router

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/routerd/routerd/internal/logring"
	"github.com/routerd/routerd/router/control"
)

// PreviousBootLog is where the image's init keeps the log of the boot
// before this one, beside the config on the data partition.
const PreviousBootLog = "log/previous-boot.log"

// logsHandler serves routerctl logs: the kept lines, filtered by
// component and age, and with follow=1 the new ones as they come.
func (s *Supervisor) logsHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("previous") == "1" {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(s.path), PreviousBootLog))
		if errors.Is(err, os.ErrNotExist) {
			control.WriteError(w, http.StatusNotFound, errors.New("no log of a previous boot here (the image keeps one on its data partition)"))
			return
		}
		if err != nil {
			control.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(b)
		return
	}
	if s.Logs == nil {
		control.WriteError(w, http.StatusNotFound, errors.New("this routerd keeps no logs in memory"))
		return
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			control.WriteError(w, http.StatusBadRequest, fmt.Errorf("--since %q: want a duration such as 10m", v))
			return
		}
		since = time.Now().Add(-d)
	}
	component := q.Get("component")
	var follow <-chan logring.Entry
	if q.Get("follow") == "1" {
		ch, stop := s.Logs.Follow()
		defer stop()
		follow = ch
	}
	stream(w, r, s.Logs.Since(since, component), follow, func(e logring.Entry) {
		if component == "" || e.Component == component {
			fmt.Fprintln(w, e.Line)
		}
	})
}

// stream answers with lines of text: past's, then next's as they come,
// each flushed, until the caller goes (next nil: past only).
func stream[T any](w http.ResponseWriter, r *http.Request, past []T, next <-chan T, write func(T)) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, e := range past {
		write(e)
	}
	if next == nil {
		return
	}
	flusher, _ := w.(http.Flusher)
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case e := <-next:
			write(e)
		}
	}
}
