package router

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/rules"
)

// conntrackWarn is the fill at which status and the log warn: a full
// table drops new connections without a trace anywhere.
const conntrackWarn = 0.8

const (
	conntrackMax     = "/proc/sys/net/netfilter/nf_conntrack_max"
	conntrackBuckets = "/proc/sys/net/netfilter/nf_conntrack_buckets"
)

// conntrackWatch provisions the conntrack capacity (nf_conntrack_max, the
// machine's) and watches the tables of the namespaces routerd forwards in
// (each has its own, under that one limit): the fill of the fullest, and
// how many connections the flowtables forward. The home router and the
// relay each have one.
type conntrackWatch struct {
	capacity int
	key      string            // the config key of the capacity, for warnings
	ns       map[string]string // status label -> namespace ("" is routerd's own)
	offload  bool              // count offloaded connections too
	log      *slog.Logger

	mu         sync.Mutex
	notApplied string
	warned     bool
}

// provision raises nf_conntrack_max (and the hash table, a quarter of it)
// to the capacity. It never lowers them: they are the whole machine's,
// and something else may need more. Inside a network namespace they are
// read-only; status then says so.
func (w *conntrackWatch) provision() {
	notApplied := ""
	defer func() {
		w.mu.Lock()
		w.notApplied = notApplied
		w.mu.Unlock()
	}()
	have, err := readInt(conntrackMax)
	if err != nil {
		notApplied = err.Error()
		return
	}
	if have >= w.capacity {
		return
	}
	if err := os.WriteFile(conntrackMax, []byte(strconv.Itoa(w.capacity)), 0o644); err != nil {
		notApplied = fmt.Sprintf("nf_conntrack_max stays %d: %v (it is global: set it on the host)", have, err)
		w.log.Warn("conntrack capacity not raised", "want", w.capacity, "have", have, "err", err)
		return
	}
	if b, err := readInt(conntrackBuckets); err == nil && b < w.capacity/4 {
		// Fewer buckets only make lookups slower: worth a word, not a failure.
		if err := os.WriteFile(conntrackBuckets, []byte(strconv.Itoa(w.capacity/4)), 0o644); err != nil {
			w.log.Info("conntrack hash table not grown", "buckets", b, "want", w.capacity/4, "err", err)
		}
	}
	w.log.Info("conntrack capacity raised", "from", have, "to", w.capacity)
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// read reads every namespace's table. Count is the fullest namespace's:
// the limit applies to each. Counting the offloaded connections walks the
// tables, which status does and the fill watch need not.
func (w *conntrackWatch) read() status.Conntrack { return w.readTables(w.offload) }

func (w *conntrackWatch) readTables(offloaded bool) status.Conntrack {
	w.mu.Lock()
	ct := status.Conntrack{Capacity: w.capacity, NotApplied: w.notApplied, Namespaces: map[string]int{}}
	w.mu.Unlock()
	if offloaded {
		ct.Offloaded = map[string]int{}
	}
	for _, label := range slices.Sorted(maps.Keys(w.ns)) {
		t, err := rules.ReadConntrack(w.ns[label], offloaded)
		if err != nil {
			ct.Error = err.Error()
			continue
		}
		ct.Namespaces[label] = t.Count
		if offloaded {
			ct.Offloaded[label] = t.Offloaded
		}
		ct.Count = max(ct.Count, t.Count)
		ct.Max = t.Max
	}
	ct.Limit = ct.Capacity
	if ct.Max > 0 && ct.Max < ct.Limit {
		ct.Limit = ct.Max
	}
	ct.Fill = float64(ct.Count) / float64(ct.Limit)
	return ct
}

// watch warns in the log when the fullest table passes 80% of the
// capacity, once per crossing.
func (w *conntrackWatch) watch(ctx context.Context) {
	ct := w.readTables(false)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case ct.Fill >= conntrackWarn && !w.warned:
		w.log.Warn("conntrack table filling up: new connections are dropped silently when it is full",
			"count", ct.Count, "limit", ct.Limit)
		w.warned = true
	case ct.Fill < conntrackWarn*0.9:
		w.warned = false
	}
}

// warnings are what status says of a table's fill.
func (w *conntrackWatch) warnings(ct status.Conntrack) []string {
	var out []string
	if ct.Fill >= conntrackWarn {
		out = append(out, fmt.Sprintf("conntrack table %.0f%% full (%d of %d): when it is full, new connections are dropped without a trace",
			100*ct.Fill, ct.Count, ct.Limit))
	}
	if ct.Max > 0 && ct.Max < ct.Capacity {
		out = append(out, fmt.Sprintf("the kernel tracks at most %d connections, fewer than %s %d", ct.Max, w.key, ct.Capacity))
	}
	return out
}

// memTotal is the machine's memory in bytes, from /proc/meminfo.
func memTotal() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %q: %w", sc.Text(), err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemTotal")
}
