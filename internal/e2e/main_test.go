package e2e

import (
	"os"
	"testing"

	"github.com/routerd/routerd/internal/lab"
)

// TestMain starts the VM lab's tests in the guest at once, as a batch,
// while the tests that need no more than this kernel run here.
func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }
