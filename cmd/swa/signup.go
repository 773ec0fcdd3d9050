package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// signupCommand is `swa signup list`, a client of the control plane's
// /v1/signups, with the environment and exit statuses of `swa tenant`.
func signupCommand(getenv func(string) string) *cobra.Command {
	t := &tenantCLI{getenv: getenv}
	cmd := group("signup", "See the sign-ups of the platform site", `List the founders' sign-ups on the platform site through the control-plane admin
API (SWA_CONTROLPLANE_URL, SWA_ADMIN_TOKEN or SWA_ADMIN_TOKEN_FILE). Suspend a
shop opened for abuse with swa tenant suspend SLUG --reason "...".
Exit status: 0 ok, 1 server error, 2 usage, 3 not found, 4 conflict.`)
	cmd.PersistentFlags().BoolVar(&t.json, "json", false, "print the API's JSON instead of a table")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
	cmd.AddCommand(t.signupListCmd())
	silence(cmd)
	return cmd
}

// signupView is what the CLI reads of a sign-up.
type signupView struct {
	Email      string     `json:"email"`
	Slug       string     `json:"slug"`
	Status     string     `json:"status"`
	ClientAddr string     `json:"client_addr"`
	CreatedAt  time.Time  `json:"created_at"`
	VerifiedAt *time.Time `json:"verified_at"`
}

func (t *tenantCLI) signupListCmd() *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sign-ups, newest first",
		Args:  nArgs(0, 0, "[--status S]"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			all, err := c.listAll(cmd.Context(), listing{path: "/v1/signups", items: "signups", cursor: "cursor", next: "next_cursor"}, status)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if t.json {
				return printList(out, all)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EMAIL\tSUBDOMAIN\tSTATUS\tCREATED\tVERIFIED\tFROM")
			for _, r := range all {
				var s signupView
				if err := json.Unmarshal(r, &s); err != nil {
					return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
				}
				verified := "-"
				if s.VerifiedAt != nil {
					verified = s.VerifiedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Email, s.Slug, s.Status, s.CreatedAt.UTC().Format(time.RFC3339), verified, s.ClientAddr)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only this status: pending, verified, active or failed")
	return cmd
}
