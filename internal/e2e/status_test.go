package e2e

import (
	"encoding/json"
	"fmt"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router"
)

// status returns routerd's status model.
func status(rd *lab.Routerd) (*router.Status, error) {
	b, err := rd.StatusJSON()
	if err != nil {
		return nil, err
	}
	var st router.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	return &st, nil
}
