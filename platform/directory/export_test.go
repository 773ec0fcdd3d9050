package directory

import "context"

// RefreshIDs exposes the per-tenant reload that notifications trigger.
func (d *Directory) RefreshIDs(ctx context.Context, ids ...int64) error {
	return d.refresh(ctx, d.db, ids)
}
