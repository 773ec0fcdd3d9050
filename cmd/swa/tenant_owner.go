package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// ownerCmd is `swa tenant owner create`: a tenant's back-office owner.
func (t *tenantCLI) ownerCmd() *cobra.Command {
	cmd := group("owner", "Create a tenant's back-office owner", "")
	var email, name, password string
	create := &cobra.Command{
		Use:   "create SLUG --email EMAIL --name NAME [--password -]",
		Short: "Create a back-office owner (the tenant's first one, typically)",
		Long: `Create a staff member with the owner role in the tenant's back office
(/admin/ on the tenant's host). With --password -, the first password is read
from standard input; without it, a strong one is made up and printed once.
The owner can change it, and add a second factor, after signing in.`,
		Args: nArgs(1, 1, "SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if email == "" || name == "" {
				return usageError("--email and --name are required")
			}
			made := false
			switch password {
			case "":
				password, made = "Owner-"+randomHex(12)+"!", true
			case "-":
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return usageError("--password: reading standard input: %v", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			default:
				return usageError("--password takes only - (read from standard input), to keep it out of the process list")
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			body := map[string]string{"email": email, "name": name, "password": password}
			raw, _, err := c.do(cmd.Context(), "POST", "/v1/tenants/"+url.PathEscape(args[0])+"/owners", body)
			if err != nil {
				return err
			}
			if t.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			var o struct{ Tenant, Email, Role string }
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s is now an %s of %s's back office (/admin/ on its host)\n", o.Email, o.Role, o.Tenant)
			if made {
				fmt.Fprintf(out, "password: %s\n(shown only now; change it after signing in)\n", password)
			}
			return nil
		},
	}
	create.Flags().StringVar(&email, "email", "", "the owner's email address (their sign-in)")
	create.Flags().StringVar(&name, "name", "", "the owner's name")
	create.Flags().StringVar(&password, "password", "", "- to read the first password from standard input")
	cmd.AddCommand(create)
	return cmd
}
