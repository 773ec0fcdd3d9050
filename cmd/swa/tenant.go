package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Exit statuses of `swa tenant`.
const (
	exitFailure  = 1 // the server or the operation failed
	exitUsage    = 2 // the command line (or input the server refused) is wrong
	exitNotFound = 3
	exitConflict = 4
)

// cliError is a `swa tenant` failure with its exit status.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// ExitCode is the process exit status main uses for this error.
func (e *cliError) ExitCode() int { return e.code }

func usageError(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// tenantCommand is `swa tenant ...`, a client of the control-plane admin
// API at SWA_CONTROLPLANE_URL, authenticated with SWA_ADMIN_TOKEN (or the
// file named by SWA_ADMIN_TOKEN_FILE). Exit status: 0 ok, 1 server or
// operation error, 2 usage, 3 not found, 4 conflict.
func tenantCommand(getenv func(string) string) *cobra.Command {
	t := &tenantCLI{getenv: getenv}
	cmd := group("tenant", "Create and manage tenants through the control plane", `Manage tenants through the control-plane admin API.

Environment: SWA_CONTROLPLANE_URL (default http://127.0.0.1:8001) and
SWA_ADMIN_TOKEN or SWA_ADMIN_TOKEN_FILE.
Exit status: 0 ok, 1 server or operation error, 2 usage, 3 not found, 4 conflict.`)
	cmd.PersistentFlags().BoolVar(&t.json, "json", false, "print the API's JSON instead of a table")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
	cmd.AddCommand(
		t.createCmd(), t.forkCmd(), t.listCmd(), t.showCmd(),
		t.suspendCmd(),
		t.simpleCmd("resume", "Serve a suspended tenant again", "/resume"),
		t.deleteCmd(),
		t.longCmd("retry", "Resume a create or fork that failed or was interrupted", "POST", "/retry"),
		t.longCmd("rotate-secrets", "Give a tenant a new database password and session key", "POST", "/rotate-secrets"),
		t.listedCmd("domains", "hostname", "Hostnames routed to a tenant"),
		t.listedCmd("origins", "origin", "Browser origins a tenant trusts for CORS and CSRF"),
		t.secretsCmd(), t.migrateCmd(), t.siteCmd(), t.importDjangoCmd(), t.exportCmd(), t.restoreCmd(), t.moveCmd(),
		t.ownerCmd(), t.planCmd(), t.usageCmd(),
	)
	silence(cmd)
	return cmd
}

// group is a command that only holds subcommands.
func group(use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Long: long,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

func silence(cmd *cobra.Command) {
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	for _, c := range cmd.Commands() {
		silence(c)
	}
}

// nArgs checks the number of positional arguments.
func nArgs(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageError("usage: %s %s", cmd.CommandPath(), names)
		}
		return nil
	}
}

type tenantCLI struct {
	getenv func(string) string
	json   bool
}

// client resolves the API address and token from the environment.
func (t *tenantCLI) client() (*apiClient, error) {
	base := strings.TrimRight(t.getenv("SWA_CONTROLPLANE_URL"), "/")
	if base == "" {
		base = "http://127.0.0.1:8001"
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError("SWA_CONTROLPLANE_URL: want http(s)://host:port")
	}
	token, file := t.getenv("SWA_ADMIN_TOKEN"), t.getenv("SWA_ADMIN_TOKEN_FILE")
	switch {
	case token != "" && file != "":
		return nil, usageError("SWA_ADMIN_TOKEN and SWA_ADMIN_TOKEN_FILE are both set; keep one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageError("SWA_ADMIN_TOKEN_FILE: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, usageError("set SWA_ADMIN_TOKEN (or SWA_ADMIN_TOKEN_FILE) to an admin token of the control plane")
	}
	return &apiClient{base: base, token: token, http: &http.Client{Timeout: time.Minute}}, nil
}

// apiClient calls the admin API.
type apiClient struct {
	base, token string
	http        *http.Client
}

// apiErrorBody is the API's JSON error.
type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// do sends one request and returns the response body; an error status
// becomes a cliError with the matching exit status.
func (c *apiClient) do(ctx context.Context, method, path string, body any) ([]byte, http.Header, error) {
	var rd io.Reader
	contentType := "application/json"
	if raw, ok := body.(rawBody); ok {
		rd, contentType = bytes.NewReader(raw.data), raw.contentType
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.http.Do(req)
	if err != nil {
		// The error names the URL only, never the token.
		return nil, nil, &cliError{code: exitFailure, msg: fmt.Sprintf("control plane at %s: %v", c.base, errors.Unwrap(err))}
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, nil, &cliError{code: exitFailure, msg: fmt.Sprintf("control plane: reading response: %v", err)}
	}
	if res.StatusCode < 400 {
		return out, res.Header, nil
	}
	var e apiErrorBody
	msg := strings.TrimSpace(string(out))
	if json.Unmarshal(out, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
		if e.Error.Field != "" {
			msg = e.Error.Field + ": " + msg
		}
	}
	code := exitFailure
	switch res.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		code = exitUsage
	case http.StatusNotFound:
		code = exitNotFound
	case http.StatusConflict:
		code = exitConflict
	case http.StatusUnauthorized:
		msg += " (check SWA_ADMIN_TOKEN)"
	}
	return nil, nil, &cliError{code: code, msg: msg}
}

// getJSON fetches path into v.
func (c *apiClient) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	raw, _, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	return raw, json.Unmarshal(raw, v)
}

// tenantView is what the CLI reads of a tenant.
type tenantView struct {
	Slug                string         `json:"slug"`
	DisplayName         string         `json:"display_name"`
	Status              string         `json:"status"`
	Plan                string         `json:"plan"`
	ForkOf              *string        `json:"fork_of"`
	DBServer            *string        `json:"db_server"`
	DBName              string         `json:"db_name"`
	SchemaVersion       int64          `json:"schema_version"`
	LastMigrationStatus *string        `json:"last_migration_status"`
	LastMigrationError  *string        `json:"last_migration_error"`
	Settings            map[string]any `json:"settings"`
	Domains             []string       `json:"domains"`
	Origins             []string       `json:"origins"`
	CreatedAt           time.Time      `json:"created_at"`
	UpdatedAt           time.Time      `json:"updated_at"`
}

type operationView struct {
	ID     string  `json:"id"`
	Kind   string  `json:"kind"`
	Status string  `json:"status"`
	Tenant *string `json:"tenant"`
	Error  *string `json:"error"`
	URL    string  `json:"url"`
}

type acceptedView struct {
	Operation operationView `json:"operation"`
	Tenant    *tenantView   `json:"tenant"`
}

// printJSON writes raw API JSON, indented.
// listing names a paged /v1 list route: its path, the key of its items,
// the query parameter taking the cursor and the key of the next one.
type listing struct{ path, items, cursor, next string }

// listAll reads every page of l, of one status when status is set.
func (c *apiClient) listAll(ctx context.Context, l listing, status string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	cursor := ""
	for {
		q := url.Values{"limit": {"500"}}
		if status != "" {
			q.Set("status", status)
		}
		if cursor != "" {
			q.Set(l.cursor, cursor)
		}
		var page map[string]json.RawMessage
		if _, err := c.getJSON(ctx, l.path+"?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		var items []json.RawMessage
		var next *string
		if err := json.Unmarshal(page[l.items], &items); err != nil {
			return nil, &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
		}
		if raw, ok := page[l.next]; ok {
			if err := json.Unmarshal(raw, &next); err != nil {
				return nil, &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
			}
		}
		all = append(all, items...)
		if next == nil {
			return all, nil
		}
		cursor = *next
	}
}

// printList prints a list read by listAll as one JSON array.
func printList(w io.Writer, all []json.RawMessage) error {
	if all == nil {
		all = []json.RawMessage{}
	}
	raw, _ := json.Marshal(all)
	return printJSON(w, raw)
}

func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

func printTenant(w io.Writer, t tenantView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := [][2]string{
		{"slug", t.Slug}, {"name", t.DisplayName}, {"status", t.Status}, {"plan", t.Plan},
		{"fork of", orDash(t.ForkOf)}, {"db server", orDash(t.DBServer)}, {"database", t.DBName},
		{"schema version", strconv.FormatInt(t.SchemaVersion, 10)},
		{"last migration", orDash(t.LastMigrationStatus)},
		{"domains", strings.Join(t.Domains, ", ")}, {"origins", strings.Join(t.Origins, ", ")},
		{"created", t.CreatedAt.Format(time.RFC3339)}, {"updated", t.UpdatedAt.Format(time.RFC3339)},
	}
	if t.LastMigrationError != nil {
		rows = append(rows, [2]string{"migration error", *t.LastMigrationError})
	}
	if len(t.Settings) > 0 {
		b, _ := json.Marshal(t.Settings)
		rows = append(rows, [2]string{"settings", string(b)})
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

// runOperation handles a 202: with wait, it polls the operation and fails
// (exit 1) if the operation failed; then prints the tenant or the operation.
func (t *tenantCLI) runOperation(cmd *cobra.Command, c *apiClient, raw []byte, wait bool, timeout time.Duration) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	var acc acceptedView
	if err := json.Unmarshal(raw, &acc); err != nil {
		return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
	}
	op := acc.Operation
	if !wait {
		if t.json {
			return printJSON(out, raw)
		}
		_, err := fmt.Fprintf(out, "operation %s (%s) %s; poll %s\n", op.ID, op.Kind, op.Status, op.URL)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var opRaw []byte
	for op.Status == "queued" || op.Status == "running" {
		select {
		case <-ctx.Done():
			return &cliError{code: exitFailure, msg: fmt.Sprintf("operation %s still running after %s; poll %s", op.ID, timeout, op.URL)}
		case <-time.After(200 * time.Millisecond):
		}
		var err error
		if opRaw, err = c.getJSON(ctx, "/v1/operations/"+op.ID, &op); err != nil {
			return err
		}
	}
	if op.Status != "succeeded" {
		return &cliError{code: exitFailure, msg: fmt.Sprintf("operation %s (%s) failed: %s", op.ID, op.Kind, orDash(op.Error))}
	}
	if op.Tenant == nil {
		if t.json {
			return printJSON(out, opRaw)
		}
		_, err := fmt.Fprintf(out, "operation %s (%s) succeeded\n", op.ID, op.Kind)
		return err
	}
	return t.show(cmd, c, *op.Tenant)
}

// show prints one tenant.
func (t *tenantCLI) show(cmd *cobra.Command, c *apiClient, slug string) error {
	var tn tenantView
	raw, err := c.getJSON(cmd.Context(), "/v1/tenants/"+url.PathEscape(slug), &tn)
	if err != nil {
		return err
	}
	if t.json {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	return printTenant(cmd.OutOrStdout(), tn)
}

// printTenantBody prints a tenant the API returned.
func (t *tenantCLI) printTenantBody(cmd *cobra.Command, raw []byte) error {
	if t.json {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	var tn tenantView
	if err := json.Unmarshal(raw, &tn); err != nil {
		return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
	}
	return printTenant(cmd.OutOrStdout(), tn)
}

type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "wait for the operation to finish (exit 1 if it fails)")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 10*time.Minute, "how long --wait waits")
}

type createBody struct {
	Slug        string         `json:"slug,omitempty"`
	DisplayName string         `json:"display_name,omitempty"`
	Plan        string         `json:"plan,omitempty"`
	ForkOf      string         `json:"fork_of,omitempty"`
	Domains     []string       `json:"domains,omitempty"`
	Origins     []string       `json:"origins,omitempty"`
	Settings    map[string]any `json:"settings,omitempty"`
}

func (b *createBody) addFlags(cmd *cobra.Command, settings map[string]*string) {
	f := cmd.Flags()
	f.StringVar(&b.DisplayName, "name", "", "display name (default: the slug)")
	f.StringVar(&b.Plan, "plan", "", "plan (default standard)")
	f.StringArrayVar(&b.Domains, "domain", nil, "extra hostname routed to the tenant (repeatable)")
	f.StringArrayVar(&b.Origins, "origin", nil, "browser origin trusted for CORS and CSRF, e.g. http://localhost:8080 (repeatable)")
	settings["frontend_origin"] = f.String("frontend-origin", "", "public origin of the tenant's frontend (email links, Stripe redirects)")
	settings["from_address"] = f.String("from-address", "", "From address of the tenant's email")
}

func settingsOf(cmd *cobra.Command, settings map[string]*string) map[string]any {
	out := map[string]any{}
	for k, v := range settings {
		if cmd.Flags().Changed(strings.ReplaceAll(k, "_", "-")) {
			out[k] = *v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (t *tenantCLI) createCmd() *cobra.Command {
	var (
		body     createBody
		w        waitFlags
		settings = map[string]*string{}
	)
	cmd := &cobra.Command{
		Use:   "create --slug SLUG [flags]",
		Short: "Create a tenant (with --fork-of, a copy of another's catalog and settings)",
		Args:  nArgs(0, 0, "--slug SLUG [flags]"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if body.Slug == "" {
				return usageError("--slug is required")
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			body.Settings = settingsOf(cmd, settings)
			raw, _, err := c.do(cmd.Context(), "POST", "/v1/tenants", body)
			if err != nil {
				return err
			}
			return t.runOperation(cmd, c, raw, w.wait, w.timeout)
		},
	}
	cmd.Flags().StringVar(&body.Slug, "slug", "", "tenant slug: 2-40 of a-z, 0-9, '-' (required)")
	cmd.Flags().StringVar(&body.ForkOf, "fork-of", "", "slug of a tenant to copy catalog and settings from (not its origins)")
	body.addFlags(cmd, settings)
	w.add(cmd)
	return cmd
}

func (t *tenantCLI) forkCmd() *cobra.Command {
	var (
		body     createBody
		w        waitFlags
		settings = map[string]*string{}
	)
	cmd := &cobra.Command{
		Use:   "fork SOURCE NEW-SLUG",
		Short: "Create a tenant starting from a copy of another's catalog and settings (not its origins)",
		Long: `Create a tenant starting from a copy of another's catalog, shipping methods,
terms, email templates, order configuration and settings (--frontend-origin
replaces the source's). Members, orders and the source's browser origins are
never copied: the origins belong to the source's frontend, so give the fork
its own with --origin.`,
		Args: nArgs(2, 2, "SOURCE NEW-SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			body.Slug = args[1]
			body.Settings = settingsOf(cmd, settings)
			raw, _, err := c.do(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(args[0])+"/fork", body)
			if err != nil {
				return err
			}
			return t.runOperation(cmd, c, raw, w.wait, w.timeout)
		},
	}
	body.addFlags(cmd, settings)
	w.add(cmd)
	return cmd
}

func (t *tenantCLI) listCmd() *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  nArgs(0, 0, "[--status S]"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			all, err := c.listAll(cmd.Context(), listing{path: "/v1/tenants", items: "tenants", cursor: "after", next: "next_after"}, status)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if t.json {
				return printList(out, all)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLUG\tSTATUS\tPLAN\tSCHEMA\tNAME\tDOMAINS")
			for _, r := range all {
				var tn tenantView
				if err := json.Unmarshal(r, &tn); err != nil {
					return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", tn.Slug, tn.Status, tn.Plan, tn.SchemaVersion, tn.DisplayName, strings.Join(tn.Domains, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only these statuses, comma-separated (default: all but deleted)")
	return cmd
}

func (t *tenantCLI) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SLUG",
		Short: "Show one tenant",
		Args:  nArgs(1, 1, "SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			return t.show(cmd, c, args[0])
		},
	}
}

// simpleCmd is a quick POST on a tenant that answers with the tenant.
func (t *tenantCLI) simpleCmd(name, short, suffix string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " SLUG",
		Short: short,
		Args:  nArgs(1, 1, "SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(args[0])+suffix, nil)
			if err != nil {
				return err
			}
			return t.printTenantBody(cmd, raw)
		},
	}
}

// suspendCmd is suspend with the reason the audit log records.
func (t *tenantCLI) suspendCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "suspend SLUG",
		Short: "Stop serving a tenant (its data stays)",
		Args:  nArgs(1, 1, "SLUG [--reason TEXT]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			var body any
			if reason != "" {
				body = map[string]string{"reason": reason}
			}
			raw, _, err := c.do(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(args[0])+"/suspend", body)
			if err != nil {
				return err
			}
			return t.printTenantBody(cmd, raw)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (abuse, unpaid, ...), recorded in the audit log")
	return cmd
}

// longCmd is a request on a tenant that starts an operation.
func (t *tenantCLI) longCmd(name, short, method, suffix string) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   name + " SLUG",
		Short: short,
		Args:  nArgs(1, 1, "SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), method, "/v1/tenants/"+url.PathEscape(args[0])+suffix, nil)
			if err != nil {
				return err
			}
			return t.runOperation(cmd, c, raw, w.wait, w.timeout)
		},
	}
	w.add(cmd)
	return cmd
}

func (t *tenantCLI) deleteCmd() *cobra.Command {
	var yes bool
	cmd := t.longCmd("delete", "Delete a tenant: drop its database, forget its secrets, release its domains", "DELETE", "")
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !yes {
			return usageError("deleting %s drops its database for good; add --yes to confirm", args[0])
		}
		return run(cmd, args)
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}

// listedCmd is `domains` or `origins`: list, add and remove one item.
func (t *tenantCLI) listedCmd(name, item, short string) *cobra.Command {
	cmd := group(name, short, "")
	base := func(slug string) string { return "/v1/tenants/" + url.PathEscape(slug) + "/" + name }
	printList := func(cmd *cobra.Command, raw []byte) error {
		if t.json {
			return printJSON(cmd.OutOrStdout(), raw)
		}
		var m struct {
			Domains []string `json:"domains"`
			Origins []string `json:"origins"`
			// GET domains: each one's verification state.
			Details []struct {
				Hostname string `json:"hostname"`
				Status   string `json:"status"`
			} `json:"details"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
		}
		list := m.Domains
		if name == "origins" {
			list = m.Origins
		}
		status := map[string]string{}
		for _, d := range m.Details {
			status[d.Hostname] = d.Status
		}
		for _, v := range list {
			if status[v] == "pending" {
				v += " (pending: not routed until its DNS record is seen)"
			}
			fmt.Fprintln(cmd.OutOrStdout(), v)
		}
		return nil
	}
	cmd.AddCommand(
		&cobra.Command{
			Use: "list SLUG", Short: "List the tenant's " + name, Args: nArgs(1, 1, "SLUG"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := t.client()
				if err != nil {
					return err
				}
				raw, _, err := c.do(cmd.Context(), "GET", base(args[0]), nil)
				if err != nil {
					return err
				}
				return printList(cmd, raw)
			},
		},
		&cobra.Command{
			Use: "add SLUG " + strings.ToUpper(item), Short: "Add a " + item, Args: nArgs(2, 2, "SLUG "+strings.ToUpper(item)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := t.client()
				if err != nil {
					return err
				}
				raw, _, err := c.do(cmd.Context(), "POST", base(args[0]), map[string]string{item: args[1]})
				if err != nil {
					return err
				}
				return printList(cmd, raw)
			},
		},
		&cobra.Command{
			Use: "remove SLUG " + strings.ToUpper(item), Short: "Remove a " + item, Args: nArgs(2, 2, "SLUG "+strings.ToUpper(item)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := t.client()
				if err != nil {
					return err
				}
				if _, _, err := c.do(cmd.Context(), "DELETE", base(args[0])+"/"+url.PathEscape(args[1]), nil); err != nil {
					return err
				}
				if t.json {
					return nil
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed %s %s from %s\n", item, args[1], args[0])
				return err
			},
		},
	)
	return cmd
}

// secretFlags are the write-only fields of PUT /v1/tenants/{slug}/secrets.
var secretFlags = []struct{ flag, field, doc string }{
	{"stripe-secret-key", "stripe_secret_key", "Stripe secret key (sk_... or rk_...)"},
	{"stripe-publishable-key", "stripe_publishable_key", "Stripe publishable key (pk_...)"},
	{"stripe-webhook-secret", "stripe_webhook_secret", "Stripe webhook signing secret (whsec_...)"},
	{"smtp-host", "smtp_host", "SMTP relay host"},
	{"smtp-port", "smtp_port", "SMTP relay port"},
	{"smtp-username", "smtp_username", "SMTP user name"},
	{"smtp-password", "smtp_password", "SMTP password"},
}

func (t *tenantCLI) secretsCmd() *cobra.Command {
	cmd := group("secrets", "Set a tenant's Stripe and SMTP secrets, or show which are set", "")
	values := map[string]*string{}
	set := &cobra.Command{
		Use:   "set SLUG --FIELD VALUE...",
		Short: "Set secrets; a value of - is read from standard input; an empty value clears one",
		Long: `Set a tenant's secrets. Values are write-only: the API never shows them again.
A value of "-" is read from standard input (one flag at most), which keeps it
out of the process list and the shell history.`,
		Args: nArgs(1, 1, "SLUG --FIELD VALUE..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			stdinUsed := ""
			for _, sf := range secretFlags {
				if !cmd.Flags().Changed(sf.flag) {
					continue
				}
				v := *values[sf.flag]
				if v == "-" {
					if stdinUsed != "" {
						return usageError("only one flag can read standard input (--%s and --%s both use -)", stdinUsed, sf.flag)
					}
					stdinUsed = sf.flag
					b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
					if err != nil {
						return usageError("--%s: reading standard input: %v", sf.flag, err)
					}
					v = strings.TrimRight(string(b), "\r\n")
				}
				if sf.field == "smtp_port" {
					port, err := strconv.Atoi(v)
					if err != nil || port < 0 || port > 65535 {
						return usageError("--smtp-port: want a port number")
					}
					body[sf.field] = port
					continue
				}
				body[sf.field] = v
			}
			if len(body) == 0 {
				return usageError("name at least one secret to set, e.g. --stripe-secret-key -")
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), "PUT", "/v1/tenants/"+url.PathEscape(args[0])+"/secrets", body)
			if err != nil {
				return err
			}
			return t.printSecrets(cmd, raw)
		},
	}
	for _, sf := range secretFlags {
		values[sf.flag] = set.Flags().String(sf.flag, "", sf.doc)
	}
	show := &cobra.Command{
		Use:   "show SLUG",
		Short: "Show which secrets are set (never their values)",
		Args:  nArgs(1, 1, "SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), "GET", "/v1/tenants/"+url.PathEscape(args[0])+"/secrets", nil)
			if err != nil {
				return err
			}
			return t.printSecrets(cmd, raw)
		},
	}
	cmd.AddCommand(set, show)
	return cmd
}

func (t *tenantCLI) printSecrets(cmd *cobra.Command, raw []byte) error {
	if t.json {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tSET")
	for _, name := range []string{"db_password", "session_key", "stripe_secret_key", "stripe_publishable_key",
		"stripe_webhook_secret", "smtp_host", "smtp_port", "smtp_username", "smtp_password"} {
		set := "no"
		if st[name] == true {
			set = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, set)
	}
	if v, ok := st["version"].(float64); ok {
		fmt.Fprintf(tw, "version\t%d\n", int64(v))
	}
	return tw.Flush()
}

func (t *tenantCLI) migrateCmd() *cobra.Command {
	var (
		all bool
		w   waitFlags
	)
	cmd := &cobra.Command{
		Use:   "migrate [SLUG | --all]",
		Short: "Apply pending tenant migrations to one tenant or all; with neither, show each tenant's version",
		Args:  nArgs(0, 1, "[SLUG | --all]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return usageError("give a SLUG or --all, not both")
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			switch {
			case all:
				raw, _, err := c.do(cmd.Context(), "POST", "/v1/migrations/run", nil)
				if err != nil {
					return err
				}
				if err := t.runOperation(cmd, c, raw, w.wait, w.timeout); err != nil {
					return err
				}
				if w.wait && !t.json {
					return t.migrationStatus(cmd, c)
				}
				return nil
			case len(args) == 1:
				raw, _, err := c.do(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(args[0])+"/migrate", nil)
				if err != nil {
					return err
				}
				return t.runOperation(cmd, c, raw, w.wait, w.timeout)
			}
			return t.migrationStatus(cmd, c)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "migrate every active and suspended tenant")
	w.add(cmd)
	return cmd
}

func (t *tenantCLI) migrationStatus(cmd *cobra.Command, c *apiClient) error {
	var st struct {
		Latest  int64 `json:"latest"`
		Tenants []struct {
			Slug                string  `json:"slug"`
			Status              string  `json:"status"`
			SchemaVersion       int64   `json:"schema_version"`
			Current             bool    `json:"current"`
			LastMigrationStatus *string `json:"last_migration_status"`
			LastMigrationError  *string `json:"last_migration_error"`
		} `json:"tenants"`
	}
	raw, err := c.getJSON(cmd.Context(), "/v1/migrations", &st)
	if err != nil {
		return err
	}
	if t.json {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "latest tenant migration: %d\n", st.Latest)
	fmt.Fprintln(tw, "SLUG\tSTATUS\tVERSION\tCURRENT\tLAST RUN\tERROR")
	for _, tv := range st.Tenants {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%t\t%s\t%s\n", tv.Slug, tv.Status, tv.SchemaVersion, tv.Current,
			orDash(tv.LastMigrationStatus), orDash(tv.LastMigrationError))
	}
	return tw.Flush()
}
