package provision

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/secrets"
)

// InTenant runs fn in one transaction on the tenant's own database, as the
// tenant's own role (the rights the data plane has there, no more): for
// control-plane steps that write tenant rows, such as a signed-up founder's
// owner account. fn must make no network call of its own.
func (s *Service) InTenant(ctx context.Context, slug string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	t, err := s.reg.Tenant(ctx, slug)
	if err != nil {
		return err
	}
	b, err := secrets.LoadBundle(ctx, s.opts.Secrets, t.SecretsRef)
	if err != nil {
		return err
	}
	sv, err := s.connect(ctx, t.DBServerID)
	if err != nil {
		return err
	}
	defer sv.close()
	conn, err := pgx.ConnectConfig(ctx, sv.as(t.DBName, t.DBRole, b.DBPassword))
	if err != nil {
		return fmt.Errorf("database %s: connect as tenant: %w", t.DBName, err)
	}
	defer conn.Close(context.Background())
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return fn(ctx, tx) })
}
