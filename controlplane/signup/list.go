package signup

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Summary is what operators see of a sign-up: never its token, password
// hash or progress cookie.
type Summary struct {
	ID          int64      `json:"id"`
	Email       string     `json:"email"`
	ShopName    string     `json:"shop_name"`
	Slug        string     `json:"slug"`
	Status      string     `json:"status"`
	ClientAddr  string     `json:"client_addr"` // the address the sign-up came from
	TenantID    *int64     `json:"tenant_id"`
	Error       *string    `json:"error"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"` // of the newest link
	VerifiedAt  *time.Time `json:"verified_at"`
	ActivatedAt *time.Time `json:"activated_at"`
}

// Statuses are the statuses a sign-up can be in.
var Statuses = []string{statusPending, statusVerified, statusActive, statusFailed}

// ValidStatus reports whether st is one of Statuses.
func ValidStatus(st string) bool { return slices.Contains(Statuses, st) }

// Rows is what List reads through: a pool, a connection or a transaction.
type Rows interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// List pages through the sign-ups, newest first: those with an id below
// beforeID (0: from the newest), of one status ("" : any), at most limit.
func List(ctx context.Context, db Rows, status string, beforeID int64, limit int) ([]Summary, error) {
	const q = `SELECT id, email, shop_name, slug, status, client_addr, tenant_id, error, created_at, expires_at,
       verified_at, activated_at
FROM signups WHERE ($1 = '' OR status = $1) AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`
	rows, err := db.Query(ctx, q, status, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("list sign-ups: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Summary, error) {
		var s Summary
		err := row.Scan(&s.ID, &s.Email, &s.ShopName, &s.Slug, &s.Status, &s.ClientAddr, &s.TenantID, &s.Error,
			&s.CreatedAt, &s.ExpiresAt, &s.VerifiedAt, &s.ActivatedAt)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list sign-ups: %w", err)
	}
	return out, nil
}
