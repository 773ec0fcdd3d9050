package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// dbserverCommand is `swa dbserver add|list`, a client of the control
// plane's /v1/db-servers, with the environment and exit statuses of `swa
// tenant`.
func dbserverCommand(getenv func(string) string) *cobra.Command {
	t := &tenantCLI{getenv: getenv}
	cmd := group("dbserver", "Register and list the database servers tenants live on", `Register and list the Postgres servers that hold tenant databases, through
the control-plane admin API (SWA_CONTROLPLANE_URL, SWA_ADMIN_TOKEN or
SWA_ADMIN_TOKEN_FILE). Move a tenant to another with swa tenant move.
Exit status: 0 ok, 1 server error, 2 usage, 3 not found, 4 conflict.`)
	cmd.PersistentFlags().BoolVar(&t.json, "json", false, "print the API's JSON instead of a table")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
	cmd.AddCommand(t.dbserverAddCmd(), t.dbserverListCmd())
	silence(cmd)
	return cmd
}

type dbServerView struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Capacity int    `json:"capacity"`
	Tenants  int    `json:"tenants"`
}

func printDBServers(w io.Writer, list []dbServerView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOST\tPORT\tTENANTS\tCAPACITY")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", s.Name, s.Host, s.Port, s.Tenants, s.Capacity)
	}
	return tw.Flush()
}

func (t *tenantCLI) dbserverAddCmd() *cobra.Command {
	var (
		dsnFile, host string
		port, cap     int
	)
	cmd := &cobra.Command{
		Use:   "add NAME --admin-dsn-file FILE",
		Short: "Register a database server (or update the one of that name)",
		Long: `Register a database server, or update the one of that name. The admin
connection string (postgres://user:password@host:port/db of a login with
CREATEDB and CREATEROLE) is read from the file named by --admin-dsn-file, or
from standard input with "-", so it never shows in the process list; the
control plane checks that it logs in and keeps it in its secrets store.`,
		Args: nArgs(1, 1, "NAME --admin-dsn-file FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []byte
			var err error
			switch dsnFile {
			case "":
				return usageError("--admin-dsn-file is required (\"-\" reads standard input)")
			case "-":
				raw, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
			default:
				raw, err = os.ReadFile(dsnFile)
			}
			if err != nil {
				return usageError("--admin-dsn-file: %v", err)
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			body := map[string]any{"name": args[0], "admin_dsn": strings.TrimSpace(string(raw))}
			if host != "" {
				body["host"] = host
			}
			if port != 0 {
				body["port"] = port
			}
			if cap != 0 {
				body["capacity"] = cap
			}
			out, _, err := c.do(cmd.Context(), "POST", "/v1/db-servers", body)
			if err != nil {
				return err
			}
			if t.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			var sv dbServerView
			if err := json.Unmarshal(out, &sv); err != nil {
				return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
			}
			return printDBServers(cmd.OutOrStdout(), []dbServerView{sv})
		},
	}
	cmd.Flags().StringVar(&dsnFile, "admin-dsn-file", "", `file holding the admin connection string ("-": standard input)`)
	cmd.Flags().StringVar(&host, "host", "", "host the data plane connects to (default: the connection string's)")
	cmd.Flags().IntVar(&port, "port", 0, "port the data plane connects to (default: the connection string's)")
	cmd.Flags().IntVar(&cap, "capacity", 0, "tenant databases it may hold (default 500 for a new server)")
	return cmd
}

func (t *tenantCLI) dbserverListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the database servers",
		Args:  nArgs(0, 0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			var list struct {
				DBServers []dbServerView `json:"db_servers"`
			}
			raw, err := c.getJSON(cmd.Context(), "/v1/db-servers", &list)
			if err != nil {
				return err
			}
			if t.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return printDBServers(cmd.OutOrStdout(), list.DBServers)
		},
	}
}

// moveCmd is `swa tenant move SLUG --to-server NAME`.
func (t *tenantCLI) moveCmd() *cobra.Command {
	var (
		w  waitFlags
		to string
	)
	cmd := &cobra.Command{
		Use:   "move SLUG --to-server NAME",
		Short: "Move a tenant's database to another database server",
		Long: `Move a tenant's database to another registered database server (swa
dbserver list). Its rows are copied while it keeps working; then its writes
pause for about a second (requests that would write are answered 503 with
Retry-After, reads are served) while the last changes are copied, and the
data plane switches to the new server. The old copy is dropped after the
grace period. With --wait, prints the tenant and how long writes paused.`,
		Args: nArgs(1, 1, "SLUG --to-server NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError("--to-server is required (see swa dbserver list)")
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			path := "/v1/tenants/" + url.PathEscape(args[0]) + "/move"
			raw, _, err := c.do(cmd.Context(), "POST", path, map[string]string{"to_server": to})
			if err != nil {
				return err
			}
			if err := t.runOperation(cmd, c, raw, w.wait, w.timeout); err != nil || !w.wait || t.json {
				return err
			}
			var m struct {
				From     string `json:"from_server"`
				To       string `json:"to_server"`
				PausedMS *int   `json:"paused_ms"`
				Drop     string `json:"drop_after"`
			}
			if _, err := c.getJSON(cmd.Context(), path, &m); err != nil {
				return err
			}
			paused := "-"
			if m.PausedMS != nil {
				paused = fmt.Sprintf("%d ms", *m.PausedMS)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "moved from %s to %s; writes paused %s; old copy dropped after %s\n", m.From, m.To, paused, m.Drop)
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to-server", "", "name of the database server to move to")
	w.add(cmd)
	return cmd
}
