package campaigns

// OnClaim sets a hook run after each recipient is claimed, inside the batch
// transaction, so a test can cancel the worker there.
func OnClaim(w *Worker, f func()) { w.claimed = f }
