package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/usage"
)

// usageReport is the answer of GET /v1/tenants/{slug}/usage.
type usageReport struct {
	Tenant string `json:"tenant"`
	usage.Report
}

// getUsage answers a tenant's hourly usage over [from, to) (RFC 3339 times
// or dates, truncated to the hour; default the last 24 hours) with totals.
func (s *Server) getUsage(c *fiber.Ctx) error {
	to := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	if v := c.Query("to"); v != "" {
		t, err := parseUsageTime(v)
		if err != nil {
			return invalid("to", "to must be an RFC 3339 time or a date (2006-01-02)")
		}
		to = t
	}
	from := to.Add(-24 * time.Hour)
	if v := c.Query("from"); v != "" {
		t, err := parseUsageTime(v)
		if err != nil {
			return invalid("from", "from must be an RFC 3339 time or a date (2006-01-02)")
		}
		from = t
	}
	from, to = from.UTC().Truncate(time.Hour), to.UTC().Truncate(time.Hour)
	if !from.Before(to) {
		return invalid("from", "from must be at least an hour before to")
	}
	if to.Sub(from) > usage.MaxSpan {
		return invalid("from", "the range may span at most %d days", int(usage.MaxSpan/(24*time.Hour)))
	}
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	rep, err := usage.Read(c.UserContext(), s.reg.DB(), t.ID, from, to)
	if err != nil {
		return err
	}
	return c.JSON(usageReport{Tenant: t.Slug, Report: rep})
}

func parseUsageTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, v)
}
