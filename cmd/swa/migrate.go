package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/migrations"
)

// errSomeFailed is returned when at least one tenant failed to migrate.
var errSomeFailed = errors.New("some tenants failed to migrate")

func migrateCommand(e env) *cobra.Command {
	var allTenants bool
	var tenant string
	var concurrency int
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply migrations: the platform database (default), one tenant, or every active tenant",
		Long: `Apply migrations.

  swa migrate                   the platform registry database
  swa migrate --tenant SLUG     one tenant's database
  swa migrate --all-tenants     every active tenant, in parallel; one failure does not stop the
                                rest, and the exit status is 1 if any tenant failed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if allTenants && tenant != "" {
				return fmt.Errorf("%w: --all-tenants and --tenant exclude each other", errUsage)
			}
			if concurrency < 1 || concurrency > 64 {
				return fmt.Errorf("%w: --concurrency must be 1..64", errUsage)
			}
			ctx := cmd.Context()
			cfg, log, err := e.loadConfig()
			if err != nil {
				return err
			}
			if !allTenants && tenant == "" {
				res, err := migrations.UpDSN(ctx, cfg.PlatformDatabaseURL, migrations.Platform)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "platform: version %d -> %d (%d applied)\n", res.From, res.To, res.Applied)
				return nil
			}
			core, err := openControlPlaneCore(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer core.Close()
			if tenant != "" {
				r, err := core.prov.Migrate(ctx, tenant, "cli")
				printMigrateResult(e, r)
				return err
			}
			var done int
			results, err := core.prov.MigrateAll(ctx, concurrency, func(r provision.MigrateResult) {
				done++
				fmt.Fprintf(e.stderr, "\r%d tenants migrated", done)
			})
			fmt.Fprintln(e.stderr)
			if err != nil && results == nil {
				return err
			}
			failed := 0
			for _, r := range results {
				printMigrateResult(e, r)
				if r.Error != "" {
					failed++
				}
			}
			fmt.Fprintf(e.stdout, "%d tenants, %d failed\n", len(results), failed)
			if failed > 0 {
				return errSomeFailed
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&allTenants, "all-tenants", false, "migrate every active tenant")
	cmd.Flags().StringVar(&tenant, "tenant", "", "migrate one tenant by slug")
	cmd.Flags().IntVar(&concurrency, "concurrency", 8, "tenants migrated at once")
	return cmd
}

func printMigrateResult(e env, r provision.MigrateResult) {
	status := "ok"
	if r.Error != "" {
		status = "FAILED: " + r.Error
	}
	fmt.Fprintf(e.stdout, "%-24s %d -> %d (%d applied, %s) %s\n", r.Slug, r.From, r.To, r.Applied, r.Duration.Round(1e6), status)
}
