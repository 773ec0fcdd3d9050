package signup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Statuses of a sign-up record.
const (
	statusPending  = "pending"  // waiting for the address to be verified
	statusVerified = "verified" // verified; its shop is being created
	statusActive   = "active"   // the shop is live and the founder is its owner
	statusFailed   = "failed"   // could not be finished (see error)
)

// record is one row of signups.
type record struct {
	ID           int64
	Email        string
	PasswordHash string
	ShopName     string
	Slug         string
	Status       string
	ExpiresAt    time.Time
	TenantID     *int64
	Error        *string
	HandedOffAt  *time.Time
}

const recordColumns = `id, email, password_hash, shop_name, slug, status, expires_at, tenant_id, error, handed_off_at FROM signups`

func scanRecord(row pgx.Row) (*record, error) {
	var r record
	err := row.Scan(&r.ID, &r.Email, &r.PasswordHash, &r.ShopName, &r.Slug, &r.Status, &r.ExpiresAt, &r.TenantID, &r.Error, &r.HandedOffAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sign-up: %w", err)
	}
	return &r, nil
}

// newToken returns a random URL-safe token and its digest, as stored.
func newToken() (string, []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, digest(tok)
}

func digest(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

// querier is what reads need: a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// slugTaken reports whether a tenant has the slug (in any state: a deleted
// one's databases may still be dropping) or a verified sign-up holds it.
func slugTaken(ctx context.Context, q querier, slug string) (bool, error) {
	var taken bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenants WHERE slug = $1)
  OR EXISTS (SELECT 1 FROM signups WHERE slug = $1 AND status IN ('verified', 'active'))`, slug).Scan(&taken)
	if err != nil {
		return false, fmt.Errorf("check subdomain: %w", err)
	}
	return taken, nil
}

// pendingFor counts the address's unverified sign-ups that can still be
// verified.
func pendingFor(ctx context.Context, q querier, email string, now time.Time) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM signups WHERE lower(email) = lower($1) AND status = 'pending' AND expires_at > $2`,
		email, now).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sign-ups: %w", err)
	}
	return n, nil
}

// activeShopOf is the slug of the address's live shop, "" when none.
func activeShopOf(ctx context.Context, q querier, email string) (string, error) {
	var slug string
	err := q.QueryRow(ctx, `SELECT slug FROM signups WHERE lower(email) = lower($1) AND status IN ('verified', 'active')
ORDER BY id LIMIT 1`, email).Scan(&slug)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find shop of address: %w", err)
	}
	return slug, nil
}

// isUniqueViolation reports a unique index refusing a row.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
