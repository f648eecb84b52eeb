package lab

import (
	"encoding/json"
	"fmt"
)

// ShapeLine makes the ISP's end of port a bloated line, as a cable or DSL
// modem is: downMbit towards the router and upMbit from it, each behind a
// buffer of bufferMs at that rate (tbf; the upload shaped on an IFB fed
// from the port's ingress). It runs tc: this is the lab's ISP, not
// routerd.
func (isp *ISP) ShapeLine(port string, downMbit, upMbit float64, bufferMs int) {
	isp.lab.T.Helper()
	n := isp.NS
	ifb := "ifb-" + port
	n.MustRun("ip", "link", "add", "name", ifb, "type", "ifb")
	n.MustRun("ip", "link", "set", ifb, "up")
	isp.SetLine(port, downMbit, upMbit, bufferMs)
	n.MustRun("tc", "qdisc", "add", "dev", port, "handle", "ffff:", "ingress")
	n.MustRun("tc", "filter", "add", "dev", port, "parent", "ffff:", "matchall", "action", "mirred", "egress", "redirect", "dev", ifb)
}

// SetLine changes the rates of a line ShapeLine made, as an LTE cell or a
// shared cable segment does: the buffers stay bufferMs deep at the new
// rates, and what they hold stays queued.
func (isp *ISP) SetLine(port string, downMbit, upMbit float64, bufferMs int) {
	isp.lab.T.Helper()
	n := isp.NS
	limit := func(mbit float64) string { return fmt.Sprint(int(mbit * 1e6 / 8 * float64(bufferMs) / 1000)) }
	rate := func(mbit float64) string { return fmt.Sprintf("%dkbit", int(mbit*1000)) }
	n.MustRun("tc", "qdisc", "replace", "dev", port, "root", "tbf", "rate", rate(downMbit), "burst", "16kb", "limit", limit(downMbit))
	n.MustRun("tc", "qdisc", "replace", "dev", "ifb-"+port, "root", "tbf", "rate", rate(upMbit), "burst", "8kb", "limit", limit(upMbit))
}

// LineBytes returns the bytes the ISP's end of port sent towards the
// router (download) and received from it (upload) so far.
func (isp *ISP) LineBytes(port string) (down, up uint64) {
	isp.lab.T.Helper()
	out := isp.NS.MustRun("ip", "-j", "-s", "link", "show", "dev", port)
	var links []struct {
		Stats64 struct {
			RX struct{ Bytes uint64 } `json:"rx"`
			TX struct{ Bytes uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		isp.lab.T.Fatalf("lab: the counters of %s: %v: %s", port, err, out)
	}
	return links[0].Stats64.TX.Bytes, links[0].Stats64.RX.Bytes
}
