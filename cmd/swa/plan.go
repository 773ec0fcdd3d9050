package main

import (
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// planCommand is `swa plan ...`: the platform's plans, through the
// control-plane admin API (GET /v1/plans). A tenant's plan is changed with
// `swa tenant plan SLUG PLAN`.
func planCommand(getenv func(string) string) *cobra.Command {
	t := &tenantCLI{getenv: getenv}
	cmd := group("plan", "List the platform's plans and their limits", `List the plans tenants can be on, with their limits and monthly prices,
through the control-plane admin API (SWA_CONTROLPLANE_URL, SWA_ADMIN_TOKEN or
SWA_ADMIN_TOKEN_FILE). Move a tenant to a plan with swa tenant plan SLUG PLAN.
Exit status: 0 ok, 1 server error, 2 usage.`)
	cmd.PersistentFlags().BoolVar(&t.json, "json", false, "print the API's JSON instead of a table")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
	cmd.AddCommand(t.planListCmd())
	silence(cmd)
	return cmd
}

type planView struct {
	Name              string `json:"name"`
	DisplayName       string `json:"display_name"`
	MonthlyPriceCents int64  `json:"monthly_price_cents"`
	Listed            bool   `json:"listed"`
	Products          *int64 `json:"products"`
	StaffSeats        *int64 `json:"staff_seats"`
	OrdersPerMonth    *int64 `json:"orders_per_month"`
	EventsPerMonth    *int64 `json:"events_per_month"`
	EmailsPerMonth    *int64 `json:"emails_per_month"`
	CustomDomains     *int64 `json:"custom_domains"`
	StorageBytes      *int64 `json:"storage_bytes"`
}

func limitText(n *int64) string {
	if n == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*n, 10)
}

func (t *tenantCLI) planListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List plans with their limits and prices",
		Args:  nArgs(0, 0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			var list struct {
				Plans []planView `json:"plans"`
			}
			raw, err := c.getJSON(cmd.Context(), "/v1/plans", &list)
			if err != nil {
				return err
			}
			if t.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDISPLAY\tPRICE/MONTH\tLISTED\tPRODUCTS\tSEATS\tORDERS/MONTH\tEVENTS/MONTH\tEMAILS/MONTH\tDOMAINS\tSTORAGE BYTES")
			for _, p := range list.Plans {
				fmt.Fprintf(tw, "%s\t%s\t%d.%02d\t%t\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.DisplayName,
					p.MonthlyPriceCents/100, p.MonthlyPriceCents%100, p.Listed, limitText(p.Products), limitText(p.StaffSeats),
					limitText(p.OrdersPerMonth), limitText(p.EventsPerMonth), limitText(p.EmailsPerMonth),
					limitText(p.CustomDomains), limitText(p.StorageBytes))
			}
			return tw.Flush()
		},
	}
}

// planCmd is `swa tenant plan SLUG PLAN`: PATCH /v1/tenants/{slug} with the
// plan, which the control plane audits.
func (t *tenantCLI) planCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "plan SLUG PLAN",
		Short: "Move a tenant to another plan (see swa plan list)",
		Args:  nArgs(2, 2, "SLUG PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), "PATCH", "/v1/tenants/"+url.PathEscape(args[0]), map[string]string{"plan": args[1]})
			if err != nil {
				return err
			}
			return t.printTenantBody(cmd, raw)
		},
	}
}
