package failover

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestRunRoundsOverlap: a round that is still waiting for its answers holds
// back neither the next round (each round here waits until the next has
// started) nor a newer round's results (round 2 waits until round 3's lost
// link has been handled). Either way held, the rounds would never end.
// Round 2's results, older than round 3's, come as stale.
func TestRunRoundsOverlap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	stop := context.AfterFunc(ctx, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
	defer stop()
	started := 0
	var handled, stale []int
	round := func(ctx context.Context) []Result {
		mu.Lock()
		defer mu.Unlock()
		started++
		seq := started
		cond.Broadcast()
		if seq == 3 {
			return []Result{{LinkDown: true, Sent: seq}}
		}
		for (started <= seq || seq == 2 && !slices.Contains(handled, 3)) && ctx.Err() == nil {
			cond.Wait()
		}
		return []Result{{Sent: seq, Answered: 1}}
	}
	RunRounds(ctx, time.Millisecond, round, func(r []Result, old bool) {
		mu.Lock()
		defer mu.Unlock()
		if old {
			stale = append(stale, r[0].Sent)
		} else {
			handled = append(handled, r[0].Sent)
		}
		cond.Broadcast()
		if len(handled) >= 5 && len(stale) > 0 {
			cancel()
		}
	})
	if len(handled) < 5 {
		t.Fatalf("rounds handled before the deadline: %v; a round waiting for answers held back another", handled)
	}
	if slices.Contains(handled, 2) || !slices.IsSorted(handled) || !slices.Contains(stale, 2) {
		t.Errorf("handled %v, stale %v: round 2's results came after round 3's, and were taken as news", handled, stale)
	}
}
