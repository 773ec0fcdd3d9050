package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/controlplane/archive"
)

// The archive commands work on the platform's databases directly, as swa
// migrate does (SWA_PLATFORM_DATABASE_URL, SWA_TENANT_DB_ADMIN_URL and the
// secrets backend's settings), rather than through the admin API: an
// archive is streamed to or from a local file.

func (t *tenantCLI) archiveService(cmd *cobra.Command) (*archive.Service, func(), error) {
	e := env{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), getenv: t.getenv}
	cfg, log, err := e.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	core, err := openControlPlaneCore(cmd.Context(), cfg, log)
	if err != nil {
		return nil, nil, err
	}
	svc := &archive.Service{Provision: core.prov, Secrets: core.secrets, Progress: func(table string, rows int64) {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d rows\n", table, rows)
	}}
	return svc, core.Close, nil
}

func (t *tenantCLI) exportCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "export SLUG --to FILE",
		Short: "Write one tenant (database, settings, domains, origins) to an archive file",
		Long: `Write one tenant to a self-describing archive: its database at its migration
version (every table and id sequence, from one consistent snapshot), and its
display name, plan, settings, domains and origins. Secrets are not written.
Reads the platform's databases directly, as swa migrate does.`,
		Args: nArgs(1, 1, "SLUG --to FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError("--to is required")
			}
			svc, closeCore, err := t.archiveService(cmd)
			if err != nil {
				return err
			}
			defer closeCore()
			f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return usageError("--to: %v", err)
			}
			w := bufio.NewWriterSize(f, 1<<20)
			h, err := svc.Export(cmd.Context(), args[0], w)
			if err == nil {
				err = w.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(to)
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "exported %s at migration %d (%d tables) to %s\n", h.Slug, h.SchemaVersion, len(h.Tables), to)
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the archive file to write (must not exist)")
	return cmd
}

func (t *tenantCLI) restoreCmd() *cobra.Command {
	var slug string
	cmd := &cobra.Command{
		Use:   "restore FILE --slug SLUG",
		Short: "Create a tenant from an archive file",
		Long: `Create the tenant SLUG from an archive written by swa tenant export: the
archive's name, plan, settings and origins, the custom domains no other tenant
holds, and every row and id sequence. The new tenant has secrets of its own
(set Stripe and SMTP again). An archive from another tenant migration than
this platform's newest is refused.`,
		Args: nArgs(1, 1, "FILE --slug SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if slug == "" {
				return usageError("--slug is required")
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usageError("%v", err)
			}
			defer f.Close()
			svc, closeCore, err := t.archiveService(cmd)
			if err != nil {
				return err
			}
			defer closeCore()
			tn, h, err := svc.Restore(cmd.Context(), bufio.NewReaderSize(f, 1<<20), slug, "cli")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored %s (exported %s at migration %d) as %s\n",
				h.Slug, h.ExportedAt.Format("2006-01-02 15:04:05Z07:00"), h.SchemaVersion, tn.Slug)
			return err
		},
	}
	cmd.Flags().StringVar(&slug, "slug", "", "slug of the new tenant (required)")
	return cmd
}
