package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/controlplane/importer"
)

// importBody is the request of POST /v1/tenants/{slug}/import-django.
type importBody struct {
	From            string   `json:"from"`
	DisplayName     string   `json:"display_name,omitempty"`
	Domains         []string `json:"domains,omitempty"`
	Origins         []string `json:"origins,omitempty"`
	DryRun          bool     `json:"dry_run,omitempty"`
	DjangoSecretKey string   `json:"django_secret_key,omitempty"`
}

func (t *tenantCLI) importDjangoCmd() *cobra.Command {
	var (
		body    importBody
		slug    string
		keyFile string
		noWait  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "import-django --from DSN --slug SLUG [flags]",
		Short: "Import a Django StartupWebApp database into a tenant (created if missing)",
		Long: `Import the database of a running StartupWebApp (the original Django app) into a
tenant: members keep their passwords, orders, carts, prospects, campaigns and
analytics keep their ids, and the codes in mail already sent keep their values.
The tenant is created when there is none; an existing one must be empty, or
have been imported into before (running again upserts by the source's ids and
reports what changed). The control plane connects to --from itself; "-" reads
the connection string from stdin. docs/import.md has the whole map.

With --django-secret-key-file the tenant signs with the source's SECRET_KEY
from now on, so unsubscribe links and verification codes in mail already
sent keep working; without it those are signed again or dropped, and the
report counts them.`,
		Args: nArgs(0, 0, "--from DSN --slug SLUG [flags]"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if slug == "" || body.From == "" {
				return usageError("--from and --slug are required")
			}
			if body.From == "-" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && err != io.EOF {
					return usageError("--from -: %v", err)
				}
				body.From = strings.TrimSpace(line)
			}
			if keyFile != "" {
				raw, err := os.ReadFile(keyFile)
				if err != nil {
					return usageError("--django-secret-key-file: %v", err)
				}
				body.DjangoSecretKey = strings.TrimRight(string(raw), "\r\n")
				if body.DjangoSecretKey == "" {
					return usageError("--django-secret-key-file: the file is empty")
				}
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(slug)+"/import-django", body)
			if err != nil {
				return err
			}
			if noWait {
				return t.runOperation(cmd, c, raw, false, timeout)
			}
			var acc acceptedView
			if err := json.Unmarshal(raw, &acc); err != nil {
				return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
			}
			if err := waitOperation(cmd, c, acc.Operation, timeout); err != nil {
				return err
			}
			return t.printImportReport(cmd, c, acc.Operation.ID)
		},
	}
	f := cmd.Flags()
	f.StringVar(&body.From, "from", "", `connection string of the Django database, e.g. postgres://reader@legacy:5432/swa ("-": stdin) (required)`)
	f.StringVar(&slug, "slug", "", "tenant slug (required)")
	f.StringVar(&body.DisplayName, "name", "", "display name of a tenant the import creates")
	f.StringArrayVar(&body.Domains, "domain", nil, "extra hostname of a tenant the import creates (repeatable)")
	f.StringArrayVar(&body.Origins, "origin", nil, "browser origin of a tenant the import creates (repeatable)")
	f.BoolVar(&body.DryRun, "dry-run", false, "report what would be written, write nothing (the tenant must exist)")
	f.StringVar(&keyFile, "django-secret-key-file", "", "file holding the source's Django SECRET_KEY")
	f.BoolVar(&noWait, "no-wait", false, "print the operation and return instead of waiting for the report")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the import")
	return cmd
}

// waitOperation polls an operation until it ends: an error (exit 1) when it
// failed or is still running after timeout.
func waitOperation(cmd *cobra.Command, c *apiClient, op operationView, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	for op.Status == "queued" || op.Status == "running" {
		select {
		case <-ctx.Done():
			return &cliError{code: exitFailure, msg: fmt.Sprintf("operation %s still running after %s; poll %s", op.ID, timeout, op.URL)}
		case <-time.After(250 * time.Millisecond):
		}
		if _, err := c.getJSON(ctx, "/v1/operations/"+op.ID, &op); err != nil {
			return err
		}
	}
	if op.Status != "succeeded" {
		return &cliError{code: exitFailure, msg: fmt.Sprintf("operation %s (%s) failed: %s", op.ID, op.Kind, orDash(op.Error))}
	}
	return nil
}

// printImportReport prints an import operation's report: one line per
// table, the refused rows, the notes and the totals.
func (t *tenantCLI) printImportReport(cmd *cobra.Command, c *apiClient, opID string) error {
	var body struct {
		Report *importer.Report `json:"report"`
	}
	raw, err := c.getJSON(cmd.Context(), "/v1/operations/"+url.PathEscape(opID)+"/report", &body)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if t.json {
		return printJSON(out, raw)
	}
	rep := body.Report
	if rep == nil {
		_, err := fmt.Fprintf(out, "operation %s succeeded without a report\n", opID)
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSOURCE\tREAD\tINSERTED\tUPDATED\tUNCHANGED\tDELETED\tREFUSED\tTIME")
	for _, tr := range rep.Tables {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", tr.Table, tr.Source, tr.Read, tr.Inserted, tr.Updated,
			tr.Unchanged, tr.Deleted, len(tr.Refused), time.Duration(tr.Duration).Round(time.Millisecond))
	}
	tables := rep.Tables
	if rep.Staff != nil {
		tr := *rep.Staff
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", tr.Table, "auth_user (staff)", tr.Read, tr.Inserted, tr.Updated,
			tr.Unchanged, tr.Deleted, len(tr.Refused), time.Duration(tr.Duration).Round(time.Millisecond))
		tables = append(tables[:len(tables):len(tables)], tr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, tr := range tables {
		for _, r := range tr.Refused {
			fmt.Fprintf(out, "refused %s id %d: %s\n  %s\n", tr.Source, r.ID, r.Reason, r.Row)
		}
		for _, n := range tr.Notes {
			fmt.Fprintf(out, "note %s: %s\n", tr.Table, n)
		}
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(out, "not imported %s (%d rows): %s\n", s.Table, s.Rows, s.Why)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	what := "changes"
	if rep.DryRun {
		what = "changes a real run would make (dry run: nothing written)"
	}
	_, err = fmt.Fprintf(out, "%d %s, %d rows refused, in %s\n", rep.Changes, what, rep.Refused, time.Duration(rep.Duration).Round(time.Millisecond))
	return err
}
