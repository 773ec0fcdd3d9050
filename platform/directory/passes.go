package directory

import (
	"context"
	"sync"
	"time"
)

// Every runs pass at once and then every interval until ctx ends: the loop
// of the data plane's background workers (mail outbox, campaigns, the back
// office's sweeper).
func Every(ctx context.Context, interval time.Duration, pass func(context.Context)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// EachTenant runs fn for every tenant, at most concurrency at a time, and
// returns when all have finished; once ctx ends no further tenant starts.
func EachTenant(ctx context.Context, tenants []*Tenant, concurrency int, fn func(context.Context, *Tenant)) {
	sem := make(chan struct{}, max(1, concurrency))
	var wg sync.WaitGroup
	for _, t := range tenants {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(ctx, t)
		}()
	}
	wg.Wait()
}
