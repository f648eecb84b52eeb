package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/routerd/routerd/images/debian"
)

// caBundle concatenates the Mozilla CA certificates of ca-certificates,
// for https blocklist downloads.
func caBundle(root string) ([]byte, error) {
	crts, err := filepath.Glob(filepath.Join(root, "usr/share/ca-certificates/mozilla/*.crt"))
	if err != nil || len(crts) == 0 {
		return nil, fmt.Errorf("no certificates in %s", root)
	}
	var b bytes.Buffer
	for _, c := range crts {
		data, err := os.ReadFile(c)
		if err != nil {
			return nil, err
		}
		b.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}

// run is debian.Run: the build tools, said by name when they fail.
var run = debian.Run
