package status

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Line is a query log entry as routerctl dns log prints it.
func (q DNSQuery) Line() string {
	how := q.Answer
	if q.List != "" {
		how += " (" + q.List + ")"
	}
	return fmt.Sprintf("%s %-15s %-5s %s %s %s", q.Time.Local().Format("2006-01-02 15:04:05"), q.Client, q.Type, q.Name, how, q.Rcode)
}

// WriteText writes routerctl dns top: the clients by questions, then the
// names blocked most.
func (t DNSTop) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tNAME\tQUESTIONS\tBLOCKED")
	for _, c := range t.Clients {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", c.Address, c.Name, c.Queries, c.Blocked)
	}
	fmt.Fprintln(tw, "\nBLOCKED NAME\tTIMES")
	for _, b := range t.Blocked {
		fmt.Fprintf(tw, "%s\t%d\n", b.Name, b.Count)
	}
	return tw.Flush()
}
