package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

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
	var w wavesFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply migrations: the platform database (default), one tenant, or every active tenant",
		Long: `Apply migrations.

  swa migrate                   the platform registry database
  swa migrate --tenant SLUG     one tenant's database
  swa migrate --all-tenants     every active tenant, in parallel; one failure does not stop the
                                rest, and the exit status is 1 if any tenant failed

In waves (any of --canary, --canary-percent, --batch, --gate-command):

  swa migrate --all-tenants --canary-percent 5 --gate-command "/swa healthcheck http://dp:9100/readyz" --batch 20

migrates the canaries first (named, or a percentage picked by a stable hash of the slug), then
runs the gate command (no shell: split on spaces; SWA_MIGRATE_CANARIES holds the canaries'
slugs), then the rest in batches. A failed tenant or a non-zero gate stops the rollout before
the next wave: the exit status is 1 and the tenants left untouched are listed.

  swa migrate --all-tenants --dry-run [wave flags]   lists the waves and, per tenant, the
                                                     migrations that would be applied`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if allTenants && tenant != "" {
				return fmt.Errorf("%w: --all-tenants and --tenant exclude each other", errUsage)
			}
			if (w.used(cmd) || w.dryRun) && !allTenants {
				return fmt.Errorf("%w: --canary, --canary-percent, --batch, --gate-command and --dry-run need --all-tenants", errUsage)
			}
			if err := w.check(cmd); err != nil {
				return err
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
			if w.dryRun || w.used(cmd) {
				return runWaves(ctx, e, core.prov, w, concurrency)
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
	cmd.Flags().StringSliceVar(&w.canary, "canary", nil, "slugs of the canary tenants, migrated first (comma-separated)")
	cmd.Flags().IntVar(&w.canaryPercent, "canary-percent", 0, "percentage of tenants migrated first (stable pick), when --canary is not given")
	cmd.Flags().IntVar(&w.batch, "batch", 0, "tenants per wave after the canaries (0: all the rest at once)")
	cmd.Flags().StringVar(&w.gate, "gate-command", "", "command run after the canaries; non-zero stops the rollout")
	cmd.Flags().DurationVar(&w.gateTimeout, "gate-timeout", 10*time.Minute, "longest the gate command may run")
	cmd.Flags().BoolVar(&w.dryRun, "dry-run", false, "list the waves and each tenant's pending migrations; change nothing")
	return cmd
}

type wavesFlags struct {
	canary        []string
	canaryPercent int
	batch         int
	gate          string
	gateTimeout   time.Duration
	dryRun        bool
}

func (w wavesFlags) used(cmd *cobra.Command) bool {
	for _, f := range []string{"canary", "canary-percent", "batch", "gate-command"} {
		if cmd.Flags().Changed(f) {
			return true
		}
	}
	return false
}

func (w wavesFlags) check(cmd *cobra.Command) error {
	switch {
	case len(w.canary) > 0 && cmd.Flags().Changed("canary-percent"):
		return fmt.Errorf("%w: --canary and --canary-percent exclude each other", errUsage)
	case w.canaryPercent < 0 || w.canaryPercent > 100:
		return fmt.Errorf("%w: --canary-percent must be 0..100", errUsage)
	case w.batch < 0:
		return fmt.Errorf("%w: --batch must be at least 0", errUsage)
	case cmd.Flags().Changed("gate-command") && len(strings.Fields(w.gate)) == 0:
		return fmt.Errorf("%w: --gate-command is empty", errUsage)
	case w.gate != "" && len(w.canary) == 0 && w.canaryPercent == 0:
		return fmt.Errorf("%w: --gate-command runs after the canaries: give --canary or --canary-percent", errUsage)
	case w.gateTimeout <= 0:
		return fmt.Errorf("%w: --gate-timeout must be positive", errUsage)
	}
	return nil
}

// runWaves is `migrate --all-tenants` with wave flags or --dry-run.
func runWaves(ctx context.Context, e env, prov *provision.Service, w wavesFlags, concurrency int) error {
	plan := provision.Waves{Canaries: w.canary, CanaryPercent: w.canaryPercent, Batch: w.batch, Concurrency: concurrency}
	if w.dryRun {
		waves, tenants, err := prov.PlanWaves(ctx, plan)
		if err != nil {
			return err
		}
		pending, err := prov.PendingMigrations(tenants)
		if err != nil {
			return err
		}
		bySlug := map[string]provision.Pending{}
		changes := 0
		for _, p := range pending {
			bySlug[p.Slug] = p
			if len(p.Migrations) > 0 {
				changes++
			}
		}
		for _, wave := range waves {
			fmt.Fprintf(e.stdout, "wave %s (%d tenants)\n", wave.Name, len(wave.Slugs))
			for _, slug := range wave.Slugs {
				p := bySlug[slug]
				what := "up to date"
				if len(p.Migrations) > 0 {
					what = strings.Join(p.Migrations, " ")
				}
				fmt.Fprintf(e.stdout, "  %-24s version %d: %s\n", slug, p.From, what)
			}
		}
		fmt.Fprintf(e.stdout, "dry run: %d tenants, %d with pending migrations, nothing changed\n", len(tenants), changes)
		return nil
	}
	if w.gate != "" {
		argv := strings.Fields(w.gate)
		plan.Gate = func(ctx context.Context, canaries []provision.MigrateResult) error {
			ctx, cancel := context.WithTimeout(ctx, w.gateTimeout)
			defer cancel()
			slugs := make([]string, len(canaries))
			for i, r := range canaries {
				slugs[i] = r.Slug
			}
			c := exec.CommandContext(ctx, argv[0], argv[1:]...)
			c.Env = append(os.Environ(), "SWA_MIGRATE_CANARIES="+strings.Join(slugs, ","))
			c.Stdout, c.Stderr = e.stderr, e.stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("%s: %w", w.gate, err)
			}
			return nil
		}
	}
	rep, err := prov.MigrateWaves(ctx, plan, nil)
	for _, wave := range rep.Waves {
		fmt.Fprintf(e.stdout, "wave %s (%d tenants)\n", wave.Name, len(wave.Slugs))
		for _, r := range wave.Results {
			printMigrateResult(e, r)
		}
	}
	if rep.Stopped != "" {
		fmt.Fprintf(e.stdout, "STOPPED at %s\n", rep.Stopped)
		if len(rep.Untouched) > 0 {
			fmt.Fprintf(e.stdout, "not migrated (%d): %s\n", len(rep.Untouched), strings.Join(rep.Untouched, ", "))
		}
	}
	return err
}

func printMigrateResult(e env, r provision.MigrateResult) {
	status := "ok"
	if r.Error != "" {
		status = "FAILED: " + r.Error
	}
	fmt.Fprintf(e.stdout, "%-24s %d -> %d (%d applied, %s) %s\n", r.Slug, r.From, r.To, r.Applied, r.Duration.Round(1e6), status)
}
