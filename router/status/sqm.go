package status

import (
	"fmt"
	"io"
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
	if s.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", oneLine(s.Error))
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
