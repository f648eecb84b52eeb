package update

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
)

// stateFile records the update in flight and the last one's outcome, on
// the data partition, so that a slot that rolled back can say why after
// the reboot.
const stateFile = "update.json"

// Record is update.json.
type Record struct {
	// Attempt is an update written and chosen for the next boot, or
	// booted and on probation: not yet committed.
	Attempt *Attempt `json:"attempt,omitempty"`
	Last    *Result  `json:"last,omitempty"`
}

// Attempt is one update from slot From to slot Slot.
type Attempt struct {
	Slot, From string
	Info
	At       time.Time `json:"at"`
	WANWasUp bool      `json:"wan_was_up"` // the new version must bring it up too
	// Probation is when the new slot started on probation (zero before it
	// booted).
	Probation time.Time `json:"probation,omitzero"`
}

// Result is how an attempt ended.
type Result struct {
	Outcome string `json:"outcome"` // "committed" | "rolled back"
	Slot    string `json:"slot"`
	From    string `json:"from"`
	Info
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// Load reads the record in dir; none is an empty record.
func Load(dir string) (Record, error) {
	var r Record
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

// Save writes the record durably.
func (r Record) Save(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}
