package failover

import (
	"context"
	"sync"
	"time"
)

// RunRounds starts round every interval until ctx is done, and hands the
// rounds' results to handle as they come, one at a time. A round may take
// longer than the interval (it waits up to its timeout for answers: a
// loaded line answers late, and is not down for it), so rounds overlap;
// one still waiting does not hold back a newer one's results (a link lost
// is acted on at once), and once a newer round's results are in, an older
// one's are stale: handle is told so (Monitor.Tally: its misses from
// before the line came back count in the loss, not against the run of
// answers). When ctx is done the rounds still out are waited for (they
// must end at once) and not handled. RunRounds returns when they all
// have.
func RunRounds(ctx context.Context, interval time.Duration, round func(context.Context) []Result, handle func(r []Result, stale bool)) {
	type done struct {
		seq int // the round's start, in order
		r   []Result
	}
	results := make(chan done)
	var rounds sync.WaitGroup
	rounds.Add(1)
	go func() {
		defer rounds.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for seq := 0; ; seq++ {
			rounds.Add(1)
			go func() {
				defer rounds.Done()
				r := round(ctx)
				select {
				case results <- done{seq, r}:
				case <-ctx.Done():
				}
			}()
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		rounds.Wait()
		close(results)
	}()
	latest := -1
	for d := range results {
		if ctx.Err() != nil {
			continue
		}
		handle(d.r, d.seq < latest)
		latest = max(latest, d.seq)
	}
}
