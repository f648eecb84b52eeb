package lab

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// StartIperf3 starts iperf3's server on port (with extra arguments, such
// as -B) and returns once it listens: a client started right after must
// not find the port closed. --forceflush: its output is how we know.
func (n *NS) StartIperf3(port int, extra ...string) *Proc {
	n.lab.T.Helper()
	return n.startIperf3(nil, port, extra)
}

// StartLoad is StartIperf3 for a server that loads the line, run as
// Nice says.
func (n *NS) StartLoad(port int) *Proc {
	n.lab.T.Helper()
	return n.startIperf3(Nice, port, nil)
}

// Nice prefixes a command that loads the line (iperf3 in a latency
// test): in a home the hosts that fill the line have CPUs of their own;
// in the lab they share the router's (the VM's two), and at the lowest
// priority they do not take them from its forwarding, its tunnel and the
// probes that measure its latency.
var Nice = []string{"nice", "-n", "19"}

func (n *NS) startIperf3(prefix []string, port int, extra []string) *Proc {
	n.lab.T.Helper()
	argv := append(slices.Clone(prefix), "iperf3", "-s", "-p", fmt.Sprint(port), "--forceflush")
	p := n.Start(fmt.Sprintf("iperf3-%d", port), append(argv, extra...)...)
	n.lab.Eventually(10*time.Second, fmt.Sprintf("iperf3 listening on %d in %s", port, n.Name), func() error {
		if !strings.Contains(p.Log.String(), "Server listening on") {
			return fmt.Errorf("not yet: %q", p.Log.String())
		}
		return nil
	})
	return p
}

// Iperf3Result is what the tests need of iperf3 -J's report.
type Iperf3Result struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		Sum struct { // UDP
			Packets     float64 `json:"packets"`
			LostPackets float64 `json:"lost_packets"`
			Seconds     float64 `json:"seconds"`
		} `json:"sum"`
	} `json:"end"`
}

// ParseIperf3 reads iperf3 -J's report; iperf3's own error is an error.
func ParseIperf3(out string) (Iperf3Result, error) {
	var r Iperf3Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return r, fmt.Errorf("iperf3 output: %v: %s", err, out)
	}
	if r.Error != "" {
		return r, fmt.Errorf("iperf3: %s", r.Error)
	}
	return r, nil
}
