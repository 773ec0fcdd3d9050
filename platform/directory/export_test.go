package directory

import "context"

// RefreshIDs exposes the per-tenant reload that notifications trigger.
func (d *Directory) RefreshIDs(ctx context.Context, ids ...int64) error {
	return d.refresh(ctx, d.db, ids)
}

// ResultOf exposes the mapping of a status to a lookup result.
var ResultOf = resultOf
