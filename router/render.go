package router

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText renders the status for a person, section by section.
func (st *Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "routerd %s, up %s\n", st.Version, time.Duration(st.Uptime)*time.Second)
	fmt.Fprintf(tw, "config %s (sha256 %.12s)\n", st.ConfigPath, st.ConfigHash)
	if r := st.Reload; r != nil {
		if r.Error != "" {
			fmt.Fprintf(tw, "last reload %s REFUSED: %s\n", r.At.Format(time.RFC3339), oneLine(r.Error))
		} else {
			fmt.Fprintf(tw, "last reload %s ok\n", r.At.Format(time.RFC3339))
		}
	}
	section(tw, "Components")
	fmt.Fprintln(tw, "NAME\tSTATE\tSINCE\tERROR")
	for _, c := range st.Components {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.State, ago(c.Since), oneLine(c.Error))
	}
	for _, r := range sectionRenderers {
		r(st, tw)
	}
	return tw.Flush()
}

// sectionRenderers are appended to by each capability's status section.
var sectionRenderers []func(*Status, io.Writer)

func section(w io.Writer, title string) {
	fmt.Fprintf(w, "\n%s\n", title)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return t.Format("2006-01-02 15:04")
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
