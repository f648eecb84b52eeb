package status

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// renderSQM prints the shapers: their rates, drops and each tin's delay.
func renderSQM(st *Status, w io.Writer) {
	s := st.SQM
	if s == nil {
		return
	}
	section(w, "SQM")
	fmt.Fprintf(w, "where\t%s\n", s.Where)
	fair := "flows (CAKE's triple isolation)"
	if s.PerHost {
		fair = "LAN hosts, then their flows"
	}
	over := s.Overhead
	if s.WireGuard > 0 {
		over += fmt.Sprintf(" + %d bytes for WireGuard", s.WireGuard)
	}
	fmt.Fprintf(w, "fair between\t%s; overhead %s\n", fair, over)
	if s.Uplink != "" {
		fmt.Fprintf(w, "rates of\tthe %s uplink\n", s.Uplink)
	}
	for _, d := range []struct {
		name string
		sh   *Shaper
	}{{"upload", s.Upload}, {"download", s.Download}} {
		if d.sh == nil {
			continue
		}
		fmt.Fprintf(w, "%s\t%s on %s, %s sent, %d dropped\n", d.name, bitRate(d.sh.Rate), d.sh.Iface, byteCount(d.sh.Bytes), d.sh.Drops)
		for _, t := range d.sh.Tins {
			if t.Packets == 0 && t.Drops == 0 {
				continue
			}
			fmt.Fprintf(w, "\t%s: %d packets, %d dropped, %d marked, delay avg %s peak %s\n", t.Name, t.Packets, t.Drops, t.Marks,
				t.AvgDelay.Round(10*time.Microsecond), t.PeakDelay.Round(10*time.Microsecond))
		}
	}
	if a := s.Autorate; a != nil {
		renderAutorate(a, w)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", oneLine(s.Error))
	}
}

// renderAutorate prints how the rates follow the line, and the last
// adjustments (the newest five: the JSON has up to twenty).
func renderAutorate(a *Autorate, w io.Writer) {
	refl := "none yet (the WAN's gateway, once there is one)"
	if len(a.Reflectors) > 0 {
		refl = strings.Join(a.Reflectors, ", ")
	}
	var bounds []string
	if a.UploadMax > 0 {
		bounds = append(bounds, fmt.Sprintf("upload %s–%s", bitRate(a.UploadMin), bitRate(a.UploadMax)))
	}
	if a.DownloadMax > 0 {
		bounds = append(bounds, fmt.Sprintf("download %s–%s", bitRate(a.DownloadMin), bitRate(a.DownloadMax)))
	}
	answered := "no answer yet"
	if !a.LastAnswer.IsZero() {
		answered = "answered " + time.Since(a.LastAnswer).Round(100*time.Millisecond).String() + " ago"
	}
	fmt.Fprintf(w, "autorate\t%s; reflectors %s (%s); bloat over %v\n", strings.Join(bounds, ", "), refl, answered, a.Threshold)
	changes := a.Changes[max(0, len(a.Changes)-5):]
	for _, c := range changes {
		fmt.Fprintf(w, "\t%s %s %s → %s: %s\n", c.At.Format("15:04:05.0"), c.Direction, bitRate(c.From), bitRate(c.To), c.Why)
	}
	if a.Error != "" {
		fmt.Fprintf(w, "\tautorate error: %s\n", oneLine(a.Error))
	}
}

func bitRate(bps uint64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.3g Gbit/s", float64(bps)/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.3g Mbit/s", float64(bps)/1e6)
	default:
		return fmt.Sprintf("%.3g kbit/s", float64(bps)/1e3)
	}
}

func byteCount(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
}

// SQM is the bufferbloat control: where it shapes and how each direction
// does.
type SQM struct {
	Where     string  `json:"where"`
	Overhead  string  `json:"overhead"`
	WireGuard int     `json:"wireguard_overhead,omitempty"` // bytes added for the VPN path's encapsulation
	PerHost   bool    `json:"per_host"`
	Upload    *Shaper `json:"upload"`
	Download  *Shaper `json:"download"`
	// Uplink is whose rates apply, with [sqm.backup]: "primary" or
	// "backup".
	Uplink string `json:"uplink,omitempty"`
	// Autorate: the rates follow the line (either direction "auto").
	Autorate *Autorate `json:"autorate,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// Autorate is how the shapers follow a changing line.
type Autorate struct {
	Reflectors []string      `json:"reflectors"`
	LastAnswer time.Time     `json:"last_answer,omitempty"` // from a reflector
	Threshold  time.Duration `json:"bloat_threshold_ns"`
	// The bounds per direction; a fixed direction has none.
	UploadMin   uint64       `json:"upload_min_bps,omitempty"`
	UploadMax   uint64       `json:"upload_max_bps,omitempty"`
	DownloadMin uint64       `json:"download_min_bps,omitempty"`
	DownloadMax uint64       `json:"download_max_bps,omitempty"`
	Changes     []RateChange `json:"changes,omitempty"` // the last ones, oldest first
	Error       string       `json:"error,omitempty"`
}

// RateChange is one adjustment of a shaper's rate.
type RateChange struct {
	At        time.Time `json:"at"`
	Direction string    `json:"direction"`
	From      uint64    `json:"from_bps"`
	To        uint64    `json:"to_bps"`
	Why       string    `json:"why"`
}

// Shaper is one direction's CAKE.
type Shaper struct {
	Iface string `json:"iface"`
	Rate  uint64 `json:"rate_bps"`
	Bytes uint64 `json:"bytes"`
	Drops uint32 `json:"drops"`
	Tins  []Tin  `json:"tins,omitempty"`
}

// Tin is one of CAKE's priority tins.
type Tin struct {
	Name      string        `json:"name"`
	Rate      uint64        `json:"rate_bps"`
	Bytes     uint64        `json:"bytes"`
	Packets   uint32        `json:"packets"`
	Drops     uint32        `json:"drops"`
	Marks     uint32        `json:"ecn_marks"`
	Backlog   uint32        `json:"backlog_bytes"`
	PeakDelay time.Duration `json:"peak_delay_ns"`
	AvgDelay  time.Duration `json:"avg_delay_ns"`
}
