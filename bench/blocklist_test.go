package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/iprange"
	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/blocklist"
	"github.com/routerd/routerd/rules"
)

// The blocklist benchmark runs each loader as a process of its own, so its
// peak RSS is its own: routerd's path (this test binary re-executed in
// child mode, doing what routerd does: read, parse, merge, save, apply) and
// nft -f of the same list.
const childEnv = "ROUTERD_BENCH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		run := blocklistChild
		if mode == "dnsblock" {
			run = func(string) error { return dnsBlockChild() }
		}
		if err := run(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childResult is what a child reports on stdout, in milliseconds.
type childResult map[string]float64

// blocklistChild runs in the child process. "load": a manager starts with
// no saved copy and refreshes from the list file (the first download).
// "refresh": a manager starts from the saved copy (a full replace, as at
// boot), then the file changes by 1% and it refreshes (a diff); then the
// kernel part alone, diff against full replace.
func blocklistChild(mode string) error {
	ns, dir, file, next := os.Getenv("BENCH_NS"), os.Getenv("BENCH_DIR"), os.Getenv("BENCH_FILE"), os.Getenv("BENCH_NEXT")
	cfg := blocklist.Config{NS: ns, Dir: dir, LANIfaces: []string{"lan0"}, Mask: 0xff,
		Protect: func() *blocklist.Protected { return blocklist.NewProtected(blocklist.Bogons...) },
		Lists: []blocklist.List{{Name: "bench", File: file, Format: "lines", Via: via.VPN, Refresh: time.Hour, MinRatio: 0.5,
			Timeout: time.Minute, MaxSize: 1 << 30}},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res := childResult{}
	ctx := context.Background()
	m := blocklist.New(cfg)
	t0 := time.Now()
	if err := m.Start(ctx); err != nil {
		return err
	}
	res["start_ms"] = ms(time.Since(t0))
	defer m.Stop(ctx)
	refresh := func(key string) error {
		t0 := time.Now()
		sts, err := m.RefreshNow(ctx, "bench")
		if err != nil {
			return err
		}
		if sts[0].LastResult != "updated" {
			return fmt.Errorf("refresh: %s %s", sts[0].LastResult, sts[0].LastError)
		}
		res[key] = ms(time.Since(t0))
		res["prefixes"] = float64(sts[0].Prefixes4)
		return nil
	}
	switch mode {
	case "load":
		if err := refresh("load_ms"); err != nil {
			return err
		}
	case "refresh":
		if err := os.Rename(next, file); err != nil {
			return err
		}
		if err := refresh("refresh_ms"); err != nil {
			return err
		}
		// The kernel's share: the 1% diff against replacing everything,
		// both one transaction, on lists already parsed.
		old, err := parseFile(os.Getenv("BENCH_OLD"))
		if err != nil {
			return err
		}
		cur, err := parseFile(file)
		if err != nil {
			return err
		}
		add, del := iprange.Diff4(cur, old)
		res["diff_elements"] = float64(len(add) + len(del))
		t0 := time.Now()
		if err := rules.ApplyListDiffs(ns, []rules.ListDiff{{Set4: rules.SetVPN4, Set6: rules.SetVPN6, Add4: add, Del4: del}}); err != nil {
			return fmt.Errorf("apply diff: %w", err)
		}
		res["apply_diff_ms"] = ms(time.Since(t0))
		t0 = time.Now()
		if err := rules.ReplaceLists(ns, []rules.ListDiff{{Set4: rules.SetVPN4, Set6: rules.SetVPN6, Add4: cur}}); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
		res["apply_full_ms"] = ms(time.Since(t0))
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func parseFile(path string) ([]iprange.R4, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := blocklist.Parse(f, "lines", blocklist.NewProtected(blocklist.Bogons...))
	if err != nil {
		return nil, err
	}
	return p.V4, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// run runs cmd and returns its wall time and peak RSS in MiB.
func run(b *testing.B, cmd *exec.Cmd) (time.Duration, float64, []byte) {
	b.Helper()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, errb.String())
	}
	wall := time.Since(t0)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return wall, float64(ru.Maxrss) / 1024, []byte(out.String())
}

// publicOctets are first octets outside the bogons, so that every entry
// is accepted by routerd and nft alike.
var publicOctets = func() []int {
	var out []int
	for o := 1; o <= 223; o++ {
		switch o {
		case 10, 100, 127, 169, 172, 192:
			continue
		}
		out = append(out, o)
	}
	return out
}()

// entry is a random /32 (70%) or /16–/24.
func entry(r *rand.Rand) string {
	a := fmt.Sprintf("%d.%d.%d.%d", publicOctets[r.IntN(len(publicOctets))], r.IntN(256), r.IntN(256), r.IntN(256))
	if r.IntN(10) < 7 {
		return a
	}
	bits := 16 + r.IntN(9)
	return a + fmt.Sprintf("/%d", bits)
}

// writeList writes entries as a lines list and as an nft script loading
// the same entries into an auto-merging interval set (nft would refuse the
// overlaps otherwise).
func writeList(b *testing.B, path, nftPath string, entries []string) {
	b.Helper()
	f, _ := os.Create(path)
	w := bufio.NewWriter(f)
	for _, e := range entries {
		fmt.Fprintln(w, e)
	}
	w.Flush()
	f.Close()
	if nftPath == "" {
		return
	}
	f, _ = os.Create(nftPath)
	w = bufio.NewWriter(f)
	fmt.Fprintln(w, "table inet bench {\n  set s { type ipv4_addr; flags interval; auto-merge; }\n}\nflush set inet bench s")
	for i := 0; i < len(entries); i += 10000 {
		fmt.Fprintf(w, "add element inet bench s { %s }\n", strings.Join(entries[i:min(i+10000, len(entries))], ", "))
	}
	w.Flush()
	f.Close()
}

// BenchmarkBlocklist loads 100k and 500k prefixes (mixed /32 and /16–/24)
// with routerd's loader and with nft -f, in fresh namespaces, and reports
// wall time and peak RSS of each; then a refresh with 1% of the entries
// changed, against a full reload.
func BenchmarkBlocklist(b *testing.B) {
	lab.Require(b, "nft", "nsenter")
	for _, n := range []int{100_000, 500_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			l := lab.New(b)
			r := rand.New(rand.NewPCG(uint64(n), 1))
			entries := make([]string, n)
			for i := range entries {
				entries[i] = entry(r)
			}
			list, script := filepath.Join(l.Dir, "list.txt"), filepath.Join(l.Dir, "list.nft")
			writeList(b, list, script, entries)
			changed := append([]string(nil), entries...)
			for i := 0; i < n/100; i++ {
				changed[r.IntN(n)] = entry(r)
			}
			next, nextScript := filepath.Join(l.Dir, "next.txt"), filepath.Join(l.Dir, "next.nft")
			writeList(b, next, nextScript, changed)
			old := filepath.Join(l.Dir, "old.txt")
			writeList(b, old, "", entries)

			res := map[string]float64{}
			// nft -f: the first load, then the whole list again with 1%
			// changed (flush and add, as a timer-driven reload does).
			nftNS := l.NewNS("nft")
			wall, rss, _ := run(b, nftNS.NetCmd("nft", "-f", script))
			res["nft_load_ms"], res["nft_load_MiB"] = ms(wall), rss
			wall, _, _ = run(b, nftNS.NetCmd("nft", "-f", nextScript))
			res["nft_reload_ms"] = ms(wall)

			rdNS := l.NewNS("rd")
			child := func(mode string) childResult {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childEnv+"="+mode, "BENCH_NS="+rdNS.Name, "BENCH_DIR="+filepath.Join(l.Dir, "state"),
					"BENCH_FILE="+list, "BENCH_NEXT="+next, "BENCH_OLD="+old)
				wall, rss, out := run(b, cmd)
				cr := childResult{}
				if err := json.Unmarshal(out, &cr); err != nil {
					b.Fatalf("child %s: %v: %s", mode, err, out)
				}
				cr["wall_ms"], cr["MiB"] = ms(wall), rss
				return cr
			}
			load := child("load")
			res["routerd_load_ms"], res["routerd_load_MiB"] = load["load_ms"], load["MiB"]
			res["prefixes_after_merge"] = load["prefixes"]
			ref := child("refresh")
			res["routerd_restart_apply_ms"] = ref["start_ms"]
			res["routerd_refresh_ms"] = ref["refresh_ms"]
			res["kernel_diff_ms"], res["kernel_full_ms"] = ref["apply_diff_ms"], ref["apply_full_ms"]
			res["diff_elements"] = ref["diff_elements"]
			res["routerd_refresh_MiB"] = ref["MiB"]

			for k, v := range res {
				b.ReportMetric(v, k)
			}
			b.ReportMetric(res["routerd_load_ms"]/res["nft_load_ms"], "load_time_ratio_vs_nft")
			b.ReportMetric(res["kernel_diff_ms"]/res["kernel_full_ms"], "diff_vs_full_apply")
			b.Logf("%d entries (%d after merging): routerd loads in %.0f ms, %.1f MiB peak; nft -f in %.0f ms, %.1f MiB (time ratio %.2f)",
				n, int(res["prefixes_after_merge"]), res["routerd_load_ms"], res["routerd_load_MiB"], res["nft_load_ms"], res["nft_load_MiB"],
				res["routerd_load_ms"]/res["nft_load_ms"])
			b.Logf("1%% changed: routerd refresh %.0f ms end to end (kernel: diff of %d elements %.1f ms vs full replace %.1f ms); nft -f reload %.0f ms",
				res["routerd_refresh_ms"], int(res["diff_elements"]), res["kernel_diff_ms"], res["kernel_full_ms"], res["nft_reload_ms"])
		})
	}
}
