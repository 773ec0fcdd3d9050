// Package pools opens one small pgx pool per tenant database, lazily, and
// keeps every tenant's connections under one budget per data-plane replica.
package pools

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/directory"
)

// ErrBudgetExhausted is returned by Acquire when no connection could be had
// within the acquire timeout; the caller answers 503.
var ErrBudgetExhausted = errors.New("pools: connection budget exhausted")

// Manager owns the tenant pools.
type Manager struct{}

// Do runs fn with a connection of t's database.
func (m *Manager) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	return errors.New("not yet")
}
