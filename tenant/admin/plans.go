package admin

import (
	"context"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/directory"
)

// Plan limits of the tenant (platform registry table plans, carried by the
// directory) are enforced here, where the back office adds what they count.

// planLimited answers a create the tenant's plan has no room for: 403
// {"error": "plan-limit", ...}, naming the plan so the owner knows what to
// upgrade.
func planLimited(plan directory.Plan, limit int64, what string) *apiError {
	name := plan.DisplayName
	if name == "" {
		name = plan.Name
	}
	return &apiError{Status: fiber.StatusForbidden, Code: "plan-limit",
		Detail: fmt.Sprintf("the %s plan allows %d %s; upgrade the plan to add more", name, limit, what)}
}

// checkLimit refuses one more row counted by countSQL when the plan's limit
// is reached. It runs in the transaction that adds the row, after taking a
// transaction lock named by what, so two creates at the limit cannot both
// pass.
func checkLimit(ctx context.Context, tx pgx.Tx, plan directory.Plan, limit *int64, what, countSQL string) error {
	if limit == nil {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('swa.plan-limit.' || $1))`, what); err != nil {
		return fmt.Errorf("plan limit %s: %w", what, err)
	}
	var used int64
	if err := tx.QueryRow(ctx, countSQL).Scan(&used); err != nil {
		return fmt.Errorf("plan limit %s: %w", what, err)
	}
	if !directory.Allows(limit, used) {
		return planLimited(plan, *limit, what)
	}
	return nil
}

// The plan's emails_per_month limits campaigns only: transactional mail
// (verification, password reset, order confirmation) is never refused. A
// send (or resume) is refused when this UTC month's mail in the outbox plus
// every campaign's recipients still pending, this one's included, would
// pass the limit. It runs in the send's transaction, after the segment is
// taken, so a refusal leaves the campaign as it was.
const emailsUsedSQL = `SELECT
  (SELECT count(*) FROM email_outbox WHERE created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
+ (SELECT count(*) FROM campaign_recipient r JOIN email e ON e.id = r.email_id
    WHERE r.status = 'pending' AND e.send_state = 'sending')`

func checkEmailQuota(ctx context.Context, tx pgx.Tx, plan directory.Plan) error {
	limit := plan.EmailsPerMonth
	if limit == nil {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('swa.plan-limit.emails'))`); err != nil {
		return fmt.Errorf("plan limit emails: %w", err)
	}
	var used int64
	if err := tx.QueryRow(ctx, emailsUsedSQL).Scan(&used); err != nil {
		return fmt.Errorf("plan limit emails: %w", err)
	}
	if used > *limit {
		e := planLimited(plan, *limit, "emails a month")
		e.Detail += fmt.Sprintf(" (this send would make %d)", used)
		return e
	}
	return nil
}
