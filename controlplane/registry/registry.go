// Package registry is the control plane's access to the platform database:
// tenants, their domains and browser origins, database servers, provisioning
// steps, long-running operations, the audit log and admin tokens.
//
// Every exported function validates its input (InvalidError naming the
// field) and reports a missing row as ErrNotFound and a duplicate or a
// forbidden state change as ErrConflict, so the admin API and the CLI share
// one set of rules and map errors to HTTP in one place.
package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/platform/secrets"
)

// ErrNotFound is returned (wrapped) when a tenant, domain, token or
// operation does not exist. The API maps it to 404.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) for a duplicate slug or hostname, and for
// a state change the tenant's current status does not allow. The API maps it
// to 409.
var ErrConflict = errors.New("conflict")

// PlanLimitError refuses what the tenant's plan has no room for, naming
// the plan. The API maps it to 403 plan_limit.
type PlanLimitError struct {
	Plan  string // the plan's display name
	Limit int64
	What  string // e.g. "custom domains"
}

func (e *PlanLimitError) Error() string {
	return fmt.Sprintf("the %s plan allows %d %s; change the tenant's plan to add more", e.Plan, e.Limit, e.What)
}

// InvalidError reports bad input in one named field. The API maps it to 400.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// DB is what registry queries run on: a *pgxpool.Pool, one acquired
// connection, or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Registry reads and writes the platform database.
type Registry struct {
	db      DB
	secrets secrets.Store
}

// New returns a Registry on db. store keeps the admin connection strings of
// database servers (EnsureDBServer, AdminDSN).
func New(db DB, store secrets.Store) *Registry {
	return &Registry{db: db, secrets: store}
}

// With returns a Registry running its queries on db (a transaction, or one
// connection that holds a lock) with the same secrets store.
func (r *Registry) With(db DB) *Registry { return &Registry{db: db, secrets: r.secrets} }

// DB returns what the registry runs its queries on.
func (r *Registry) DB() DB { return r.db }

// Transact runs fn in a transaction on db, committing when fn returns nil.
// A serialization failure or deadlock (40001, 40P01) reruns fn with backoff,
// so fn must not have effects outside the transaction.
func Transact(ctx context.Context, db DB, fn func(tx pgx.Tx) error) error {
	const attempts = 5
	for i := 0; ; i++ {
		err := pgx.BeginFunc(ctx, db, fn)
		if err == nil || i == attempts-1 || !retryable(err) {
			return err
		}
		backoff := time.Duration(10<<i)*time.Millisecond + time.Duration(rand.IntN(10))*time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// unknownPlan reports whether err is tenants.plan naming no row of plans.
func unknownPlan(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503" && pgErr.ConstraintName == "tenants_plan_fkey"
}

// errUnknownPlan answers a plan name the registry does not define.
func errUnknownPlan(plan string) error {
	return &InvalidError{Field: "plan", Message: fmt.Sprintf("no plan is named %q", plan)}
}

// uniqueViolation reports whether err is a unique-constraint violation and
// names the constraint.
func uniqueViolation(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName, true
	}
	return "", false
}
