package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/platform/usage"
)

// usageView is the answer of GET /v1/tenants/{slug}/usage.
type usageView struct {
	Tenant string `json:"tenant"`
	usage.Report
}

func (t *tenantCLI) usageCmd() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "usage SLUG",
		Short: "Show a tenant's usage hour by hour, with totals",
		Long: `Show a tenant's usage per UTC hour: requests, orders and revenue per currency,
client events, emails sent, and the hour's last database and site size samples.
--from and --to take RFC 3339 times or dates; the default is the last 24 hours.`,
		Args: nArgs(1, 1, "SLUG [--from T] [--to T]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			path := "/v1/tenants/" + url.PathEscape(args[0]) + "/usage"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var rep usageView
			raw, err := c.getJSON(cmd.Context(), path, &rep)
			if err != nil {
				return err
			}
			if t.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return printUsage(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start (inclusive), RFC 3339 or a date; default 24 hours before --to")
	cmd.Flags().StringVar(&to, "to", "", "end (exclusive), RFC 3339 or a date; default the end of the current hour")
	return cmd
}

func printUsage(w io.Writer, rep usageView) error {
	fmt.Fprintf(w, "%s: %s to %s (UTC)\n", rep.Tenant, rep.From.UTC().Format(time.DateTime), rep.To.UTC().Format(time.DateTime))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOUR\tREQUESTS\tORDERS\tREVENUE\tEVENTS\tEMAILS\tDB BYTES\tSITE BYTES")
	for _, h := range rep.Hours {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n", h.Hour.UTC().Format("2006-01-02 15:04"), h.Requests, h.Orders,
			revenueText(h.Revenue), h.ClientEvents, h.EmailsSent, bytesText(h.DBBytes), bytesText(h.SiteBytes))
	}
	tt := rep.Totals
	fmt.Fprintf(tw, "TOTAL\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n", tt.Requests, tt.Orders, revenueText(tt.Revenue),
		tt.ClientEvents, tt.EmailsSent, bytesText(tt.DBBytes), bytesText(tt.SiteBytes))
	return tw.Flush()
}

// revenueText writes amounts per currency: "usd 42.00, eur 1.50"; orders
// without a currency show as "(none)".
func revenueText(rs []usage.Revenue) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		cur := r.Currency
		if cur == "" {
			cur = "(none)"
		}
		sign := ""
		cents := r.Cents
		if cents < 0 {
			sign, cents = "-", -cents
		}
		parts[i] = fmt.Sprintf("%s %s%d.%02d", cur, sign, cents/100, cents%100)
	}
	return strings.Join(parts, ", ")
}

func bytesText(b *int64) string {
	if b == nil {
		return "-"
	}
	return strconv.FormatInt(*b, 10)
}
