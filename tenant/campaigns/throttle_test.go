package campaigns_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/campaigns"
)

// meeting is a Throttle that holds each worker's first Take until every
// worker has made one, so the replicas ask for the same window at once.
type meeting struct {
	campaigns.Throttle
	arrived sync.WaitGroup
	met     chan struct{}
	calls   atomic.Int32
}

func newMeeting(th campaigns.Throttle, parties int) *meeting {
	m := &meeting{Throttle: th, met: make(chan struct{})}
	m.arrived.Add(parties)
	go func() { m.arrived.Wait(); close(m.met) }()
	return m
}

// party is one worker's view of the meeting.
type party struct {
	*meeting
	once sync.Once
}

func (p *party) Take(ctx context.Context, t *directory.Tenant, budget, want int, span time.Duration) (int, error) {
	p.calls.Add(1)
	p.once.Do(func() {
		p.arrived.Done()
		select {
		case <-p.met:
		case <-ctx.Done():
		}
	})
	return p.meeting.Throttle.Take(ctx, t, budget, want, span)
}

// Two replicas sending one tenant's campaign share its rate: while the
// clock stands still in one window they queue the window's budget in all,
// not each; once time moves the campaign completes with each recipient
// mailed once.
func TestThrottleSharedByReplicas(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, "prospect", 0, 40, false, false)
	id, subject := f.campaign(t, campaigns.Prospect)
	if n := f.send(t, id); n != 40 {
		t.Fatalf("segment = %d, want 40", n)
	}
	rdb, prefix := pgtest.Redis(t)
	still := time.Unix(1_900_000_000, 0)
	frozen := &campaigns.RedisThrottle{Redis: rdb, Prefix: prefix, Now: func() time.Time { return still }}
	m := newMeeting(frozen, 2)

	// Both replicas run until the deadline; the window never ends.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sent := make([]int, 2)
	errs := make([]error, 2)
	parties := make([]*party, 2)
	for i := range 2 {
		parties[i] = &party{meeting: m}
		w := f.worker(t, campaigns.Options{Rate: 10, Batch: 10, Throttle: parties[i]})
		wg.Add(1)
		go func() { defer wg.Done(); sent[i], errs[i] = w.RunTenant(ctx, f.tenant) }()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("replica %d ended with %v, want the deadline", i, err)
		}
	}
	if m.calls.Load() < 3 {
		t.Fatalf("%d takes in all: each replica should have asked and one asked again", m.calls.Load())
	}
	if got := f.count(t, `SELECT count(*) FROM email_sent WHERE email_id = $1`, id); got != 10 || sent[0]+sent[1] != 10 {
		t.Fatalf("in one window the replicas queued %d (%v), want the window's budget of 10 in all", got, sent)
	}
	t.Logf("in one window: replicas queued %d and %d, %d takes", sent[0], sent[1], m.calls.Load())

	live := &campaigns.RedisThrottle{Redis: rdb, Prefix: prefix}
	for i := range 2 {
		w := f.worker(t, campaigns.Options{Rate: 10, Batch: 10, Throttle: live})
		wg.Add(1)
		go func() { defer wg.Done(); sent[i], errs[i] = w.RunTenant(context.Background(), f.tenant) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	f.exactlyOnce(t, id, subject, f.addrs("prospect", 0, 40))
}

// With Redis out of reach the replica keeps the rate on its own and the
// campaign still goes out.
func TestThrottleUnreachableFallsBackToReplica(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, "prospect", 0, 12, false, false)
	id, subject := f.campaign(t, campaigns.Prospect)
	f.send(t, id)
	gone := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { _ = gone.Close() })
	w := f.worker(t, campaigns.Options{Rate: 100, Batch: 5, Throttle: &campaigns.RedisThrottle{Redis: gone}})
	if n, err := w.RunTenant(context.Background(), f.tenant); err != nil || n != 12 {
		t.Fatalf("RunTenant = %d, %v; want 12 queued on the replica's own rate", n, err)
	}
	f.exactlyOnce(t, id, subject, f.addrs("prospect", 0, 12))
}
