package signup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/admin"
)

// Founder accounts. A sign-up whose shop goes live makes (or joins) the
// founder account of its address, with the sign-up's password hash, and
// links the shop to it. The founder signs in on the platform site with
// that email and password and gets a session cookie of the site; the
// session itself is in Redis under the SHA-256 of the cookie's value.

const (
	founderCookie     = "swa_founder"
	DefaultSessionTTL = 12 * time.Hour
)

// DefaultSignInRate is 10 sign-in attempts per 15 minutes, counted per
// client address and, separately, per email address.
var DefaultSignInRate = ratelimit.Rate{N: 10, Window: 15 * time.Minute}

// founder is a signed-in founder.
type founder struct {
	ID    int64
	Email string
}

func founderActor(id int64) string { return "founder:" + strconv.FormatInt(id, 10) }

// linkFounder makes the founder account of email (keeping an existing
// one's password) and links tenantID to it, in the caller's transaction.
func linkFounder(ctx context.Context, tx pgx.Tx, email, passwordHash string, tenantID int64) error {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO founders (email, password_hash) VALUES ($1, $2)
ON CONFLICT ((lower(email))) DO UPDATE SET email = founders.email RETURNING id`, email, passwordHash).Scan(&id)
	if err != nil {
		return fmt.Errorf("founder account: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO founder_tenants (founder_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, tenantID); err != nil {
		return fmt.Errorf("founder's shop: %w", err)
	}
	return nil
}

func (s *Site) sessionKey(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return s.opts.RedisPrefix + "platform:founder-session:" + hex.EncodeToString(sum[:])
}

// overRate counts one attempt under name and key and reports whether the
// rate is exceeded. A Redis failure fails closed.
func (s *Site) overRate(ctx context.Context, name, key string, rate ratelimit.Rate) (bool, error) {
	if rate.Off() {
		return false, nil
	}
	win := s.opts.Now().UnixNano() / int64(rate.Window)
	sum := sha256.Sum256([]byte(key))
	k := s.opts.RedisPrefix + "platform:" + name + ":" + hex.EncodeToString(sum[:12]) + ":" + strconv.FormatInt(win, 10)
	var cnt *redis.IntCmd
	_, err := s.opts.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		cnt = p.Incr(ctx, k)
		p.Expire(ctx, k, rate.Window+time.Second)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%s rate limit: %w", name, err)
	}
	return cnt.Val() > int64(rate.N), nil
}

// signInForm is the sign-in page's data.
type signInForm struct {
	Email string
	Error string
}

// refused is the one answer to every refused sign-in: unknown address,
// wrong password.
const refused = "That email and password do not match an account. Check them and try again."

func (s *Site) getSignIn(c *fiber.Ctx) error {
	if f, err := s.currentFounder(c); err != nil {
		return err
	} else if f != nil {
		return c.Redirect("/shops", fiber.StatusSeeOther)
	}
	return s.render(c, 200, "signin", &signInForm{})
}

func (s *Site) postSignIn(c *fiber.Ctx) error {
	ctx := c.UserContext()
	email, password := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	// Both counts happen before the account is looked up, so being limited
	// says nothing about whether the address has an account.
	byAddr, err := s.overRate(ctx, "signin-addr", s.clientIP(c), s.opts.SignInRate)
	if err != nil {
		return err
	}
	byEmail, err := s.overRate(ctx, "signin-email", strings.ToLower(email), s.opts.SignInRate)
	if err != nil {
		return err
	}
	if byAddr || byEmail {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(s.opts.SignInRate.Window.Seconds())))
		return s.render(c, 429, "signin", &signInForm{Email: email, Error: "Too many sign-in attempts. Please wait a few minutes and try again."})
	}
	var (
		id   int64
		hash string
	)
	err = s.db.QueryRow(ctx, `SELECT id, password_hash FROM founders WHERE lower(email) = lower($1)`, email).Scan(&id, &hash)
	if errors.Is(err, pgx.ErrNoRows) || email == "" || password == "" {
		// The same work as a real check, so the time does not tell either.
		s.opts.Hasher.VerifyDummy(password)
		return s.render(c, 401, "signin", &signInForm{Email: email, Error: refused})
	}
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	ok, err := s.opts.Hasher.Verify(hash, password)
	if err != nil && !errors.Is(err, account.ErrUnknownHash) {
		return fmt.Errorf("sign in: %w", err)
	}
	if !ok {
		return s.render(c, 401, "signin", &signInForm{Email: email, Error: refused})
	}
	if s.opts.Hasher.NeedsRehash(hash) {
		if h, err := s.opts.Hasher.Hash(password); err == nil {
			_, _ = s.db.Exec(ctx, `UPDATE founders SET password_hash = $2 WHERE id = $1 AND password_hash = $3`, id, h, hash)
		}
	}
	if _, err := s.db.Exec(ctx, `UPDATE founders SET last_sign_in_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	tok, _ := newToken()
	if err := s.opts.Redis.Set(ctx, s.sessionKey(tok), strconv.FormatInt(id, 10), s.opts.SessionTTL).Err(); err != nil {
		return fmt.Errorf("founder session: %w", err)
	}
	c.Cookie(&fiber.Cookie{Name: founderCookie, Value: tok, Path: "/", HTTPOnly: true, Secure: s.opts.Secure,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: s.opts.Now().Add(s.opts.SessionTTL)})
	return c.Redirect("/shops", fiber.StatusSeeOther)
}

func (s *Site) postSignOut(c *fiber.Ctx) error {
	if tok := c.Cookies(founderCookie); tok != "" {
		if err := s.opts.Redis.Del(c.UserContext(), s.sessionKey(tok)).Err(); err != nil {
			return fmt.Errorf("sign out: %w", err)
		}
	}
	c.Cookie(&fiber.Cookie{Name: founderCookie, Value: "", Path: "/", HTTPOnly: true, Secure: s.opts.Secure,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(0, 0).UTC()})
	return s.render(c, 200, "message", &message{Heading: "You are signed out",
		Text: "Sign in again to manage your shops.", Link: "/signin", LinkText: "Sign in"})
}

// currentFounder is the founder of the request's session, nil when none.
func (s *Site) currentFounder(c *fiber.Ctx) (*founder, error) {
	if f, ok := c.Locals(founderCookie).(*founder); ok {
		return f, nil
	}
	tok := c.Cookies(founderCookie)
	if len(tok) != 43 {
		return nil, nil
	}
	ctx := c.UserContext()
	v, err := s.opts.Redis.Get(ctx, s.sessionKey(tok)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("founder session: %w", err)
	}
	id, _ := strconv.ParseInt(v, 10, 64)
	f := &founder{ID: id}
	err = s.db.QueryRow(ctx, `SELECT email FROM founders WHERE id = $1`, id).Scan(&f.Email)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("founder session: %w", err)
	}
	c.Locals(founderCookie, f)
	return f, nil
}

// signedIn lets a request with a founder's session through; others go to
// the sign-in page.
func (s *Site) signedIn(c *fiber.Ctx) error {
	f, err := s.currentFounder(c)
	if err != nil {
		return err
	}
	if f == nil {
		if c.Method() == fiber.MethodGet {
			return c.Redirect("/signin", fiber.StatusSeeOther)
		}
		return s.render(c, 401, "message", &message{Heading: "Please sign in",
			Text: "Your session has ended. Sign in again to manage your shops.", Link: "/signin", LinkText: "Sign in"})
	}
	return c.Next()
}

// shop is one of a founder's tenants, as /shops lists it.
type shop struct {
	ID                 int64
	Slug, Name, Status string
	Plan, PlanName     string
	URL, Host          string
	Subscription       string // the Stripe subscription's status, "" when none
	SubscriptionID     string
}

// planChoice is a listed plan a founder may choose on /shops.
type planChoice struct {
	Name, DisplayName string
	PriceCents        int64
}

func (p planChoice) Price() string {
	if p.PriceCents == 0 {
		return "$0"
	}
	return fmt.Sprintf("$%d.%02d / month", p.PriceCents/100, p.PriceCents%100)
}

func (s *Site) shopsOf(ctx context.Context, founderID int64, slug string) ([]shop, error) {
	rows, err := s.db.Query(ctx, `SELECT t.id, t.slug, t.display_name, t.status, t.plan, p.display_name,
       coalesce(b.status, ''), coalesce(b.stripe_subscription_id, '')
FROM founder_tenants ft
JOIN tenants t ON t.id = ft.tenant_id
JOIN plans p ON p.name = t.plan
LEFT JOIN billing_subscriptions b ON b.tenant_id = t.id
WHERE ft.founder_id = $1 AND t.status <> 'deleted' AND ($2 = '' OR t.slug = $2)
ORDER BY t.slug`, founderID, slug)
	if err != nil {
		return nil, fmt.Errorf("founder's shops: %w", err)
	}
	shops, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (shop, error) {
		var sh shop
		err := r.Scan(&sh.ID, &sh.Slug, &sh.Name, &sh.Status, &sh.Plan, &sh.PlanName, &sh.Subscription, &sh.SubscriptionID)
		return sh, err
	})
	if err != nil {
		return nil, fmt.Errorf("founder's shops: %w", err)
	}
	for i := range shops {
		shops[i].URL = s.opts.TenantURL(shops[i].Slug)
		shops[i].Host = shops[i].Slug + "." + s.opts.BaseDomain
	}
	return shops, nil
}

// ownShop is the founder's shop slug, nil when they have none by that name
// (another founder's shop included).
func (s *Site) ownShop(c *fiber.Ctx) (*founder, *shop, error) {
	f, err := s.currentFounder(c)
	if err != nil || f == nil {
		return nil, nil, err
	}
	slug := c.Params("slug")
	if slug == "" {
		return f, nil, nil
	}
	shops, err := s.shopsOf(c.UserContext(), f.ID, slug)
	if err != nil || len(shops) == 0 {
		return f, nil, err
	}
	return f, &shops[0], nil
}

func (s *Site) planChoices(ctx context.Context) ([]planChoice, error) {
	rows, err := s.db.Query(ctx, `SELECT name, display_name, monthly_price_cents FROM plans WHERE listed ORDER BY sort_order, name`)
	if err != nil {
		return nil, fmt.Errorf("plans: %w", err)
	}
	plans, err := pgx.CollectRows(rows, pgx.RowToStructByPos[planChoice])
	if err != nil {
		return nil, fmt.Errorf("plans: %w", err)
	}
	return plans, nil
}

// shopsPage is the data of /shops.
type shopsPage struct {
	Email  string
	Shops  []shop
	Plans  []planChoice
	Notice string
	Paid   bool // paid plans can be bought
}

var notices = map[string]string{
	"checkout": "Thank you. Your new plan applies as soon as Stripe confirms the payment, usually within a minute.",
	"changed":  "Your plan is changed.",
	"pending":  "Your plan changes as soon as Stripe confirms it, usually within a minute.",
	"same":     "Your shop is already on that plan.",
}

func (s *Site) getShops(c *fiber.Ctx) error {
	ctx := c.UserContext()
	f, _ := s.currentFounder(c)
	shops, err := s.shopsOf(ctx, f.ID, "")
	if err != nil {
		return err
	}
	plans, err := s.planChoices(ctx)
	if err != nil {
		return err
	}
	return s.render(c, 200, "shops", &shopsPage{Email: f.Email, Shops: shops, Plans: plans,
		Notice: notices[c.Query("done")], Paid: s.billing != nil})
}

var noShop = &message{Heading: "No such shop", Text: "You have no shop by that name.", Link: "/shops", LinkText: "Your shops"}

// postBackOffice signs the founder into the shop's back office through a
// single-use handoff, as the welcome page does after sign-up.
func (s *Site) postBackOffice(c *fiber.Ctx) error {
	ctx := c.UserContext()
	f, sh, err := s.ownShop(c)
	if err != nil {
		return err
	}
	if sh == nil {
		return s.render(c, 404, "message", noShop)
	}
	if sh.Status != string(registry.StatusActive) {
		return s.render(c, 409, "message", &message{Heading: "This shop is not open",
			Text: sh.Name + " is " + sh.Status + "; its back office cannot be opened now.", Link: "/shops", LinkText: "Your shops"})
	}
	var staffID int64
	err = s.prov.InTenant(ctx, sh.Slug, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		staffID, err = admin.OwnerID(ctx, tx, f.Email)
		return err
	})
	if err != nil {
		return err
	}
	if staffID == 0 {
		return s.render(c, 409, "message", &message{Heading: "You are not staff of this shop",
			Text: "Your email no longer has an account in " + sh.Name + "'s back office. Sign in there with the account you have.",
			Link: sh.URL + "/admin/sign-in", LinkText: "Sign in to the back office"})
	}
	tok, err := admin.IssueHandoff(ctx, s.opts.Redis, s.opts.RedisPrefix, sh.ID, staffID, handoffTTL)
	if err != nil {
		return err
	}
	return s.leave(c, "Opening your back office", "Taking you to "+sh.Name+"'s back office…", "Open the back office",
		sh.URL+admin.HandoffPath+"?token="+url.QueryEscape(tok))
}

// postPlan changes the shop's plan: a free plan at once, a paid one
// through Stripe (Checkout for a shop without a subscription, a change of
// the subscription's price for one that has it), applied when the
// webhook reports it.
func (s *Site) postPlan(c *fiber.Ctx) error {
	ctx := c.UserContext()
	f, sh, err := s.ownShop(c)
	if err != nil {
		return err
	}
	if sh == nil {
		return s.render(c, 404, "message", noShop)
	}
	plans, err := s.planChoices(ctx)
	if err != nil {
		return err
	}
	want := c.FormValue("plan")
	var plan *planChoice
	for i := range plans {
		if plans[i].Name == want {
			plan = &plans[i]
		}
	}
	if plan == nil {
		return s.render(c, 400, "message", &message{Heading: "Choose a plan", Text: "Choose one of the plans listed.",
			Link: "/shops", LinkText: "Your shops"})
	}
	if plan.Name == sh.Plan {
		return c.Redirect("/shops?done=same", fiber.StatusSeeOther)
	}
	live := sh.SubscriptionID != "" && liveSubscription(sh.Subscription)
	if plan.PriceCents == 0 {
		if live {
			if s.billing == nil {
				return s.render(c, 503, "message", billingOff)
			}
			// Stripe first, outside any transaction: should it fail, the
			// shop stays on its paid plan and the founder is told.
			if err := s.billing.cancel(ctx, sh.SubscriptionID); err != nil {
				return err
			}
		}
		if err := s.setFreePlan(ctx, f, sh, plan.Name); err != nil {
			return err
		}
		return c.Redirect("/shops?done=changed", fiber.StatusSeeOther)
	}
	if s.billing == nil {
		return s.render(c, 503, "message", billingOff)
	}
	if sh.Status != string(registry.StatusActive) {
		return s.render(c, 409, "message", &message{Heading: "This shop is not open",
			Text: sh.Name + " is " + sh.Status + "; its plan cannot be changed now.", Link: "/shops", LinkText: "Your shops"})
	}
	price, err := s.billing.price(ctx, s.db, *plan)
	if err != nil {
		return err
	}
	if live {
		if err := s.billing.changePrice(ctx, sh.SubscriptionID, price, plan.Name); err != nil {
			return err
		}
		return c.Redirect("/shops?done=pending", fiber.StatusSeeOther)
	}
	customer, err := s.billing.customer(ctx, s.db, f)
	if err != nil {
		return err
	}
	u, err := s.billing.checkout(ctx, checkoutRequest{Customer: customer, Price: price, Plan: plan.Name, Founder: f.ID, Tenant: sh.ID,
		Success: s.opts.SiteURL + "/shops?done=checkout", Cancel: s.opts.SiteURL + "/shops"})
	if err != nil {
		return err
	}
	return s.leave(c, "Taking you to Stripe", "You pay for "+plan.DisplayName+" on Stripe's page; your plan changes as soon as Stripe confirms.",
		"Continue to payment", u)
}

// leave sends the browser to another origin after a form: a page that
// moves on by itself, since the CSP's form-action 'self' also stops a
// form's redirect to another origin.
func (s *Site) leave(c *fiber.Ctx, heading, text, linkText, link string) error {
	return s.render(c, 200, "message", &message{Heading: heading, Text: text, Link: link, LinkText: linkText, Refresh: link})
}

var billingOff = &message{Heading: "Paid plans are not available yet",
	Text: "Billing is not set up on this platform yet. Your shop keeps its plan.", Link: "/shops", LinkText: "Your shops"}

// liveSubscription: a subscription in one of these states is still billed.
func liveSubscription(status string) bool {
	switch status {
	case "active", "trialing", "past_due", "incomplete":
		return true
	}
	return false
}

// setFreePlan moves the shop to a free plan, audited as the founder. A
// subscription it had is recorded canceled as of now, so that an older
// webhook event delivered late does not bring the paid plan back.
func (s *Site) setFreePlan(ctx context.Context, f *founder, sh *shop, plan string) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var before string
		if err := tx.QueryRow(ctx, `SELECT plan FROM tenants WHERE id = $1 FOR UPDATE`, sh.ID).Scan(&before); err != nil {
			return fmt.Errorf("plan change: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE billing_subscriptions SET status = 'canceled', event_at = greatest(event_at, now()), updated_at = now()
WHERE tenant_id = $1`, sh.ID); err != nil {
			return fmt.Errorf("plan change: %w", err)
		}
		if before == plan {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE tenants SET plan = $2, updated_at = now() WHERE id = $1`, sh.ID, plan); err != nil {
			return fmt.Errorf("plan change: %w", err)
		}
		return registry.Audit(ctx, tx, founderActor(f.ID), "tenant.plan", sh.ID, map[string]string{"plan": before},
			map[string]string{"plan": plan})
	})
}
