package e2e

import (
	"encoding/json"
	"fmt"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// status returns routerd's status model.
func getStatus(rd *lab.Routerd) (*status.Status, error) {
	b, err := rd.StatusJSON()
	if err != nil {
		return nil, err
	}
	var st status.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	return &st, nil
}
