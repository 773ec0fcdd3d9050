package analytics

import "context"

// FlushNow writes every tenant's pending rows and waits for them.
func (a *App) FlushNow(ctx context.Context) { a.flushAll(ctx, true, true) }
