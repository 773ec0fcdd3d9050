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

	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/account"
)

// Default rates of POST /signup/resend: per client address, and per email
// address whatever client asks (so a mailbox cannot be flooded from many).
var (
	DefaultResendRate      = ratelimit.Rate{N: 10, Window: time.Hour}
	DefaultResendEmailRate = ratelimit.Rate{N: 3, Window: time.Hour}
)

// resendForm is the resend page's one field and its error.
type resendForm struct {
	Email, Error string
}

// postResend mails a new link for the address's newest pending sign-up.
// The new token replaces the old one, so the link mailed before stops
// working. The answer is the same whether or not the address has a
// pending sign-up (the page does not tell who signed up), and both limits
// count every request, known address or not.
func (s *Site) postResend(c *fiber.Ctx) error {
	ctx := c.UserContext()
	email := strings.TrimSpace(c.FormValue("email"))
	if r := account.ValidateEmail(email); !r.OK() {
		return s.render(c, 400, "resend", &resendForm{Email: email, Error: "Enter a valid email address."})
	}
	for _, l := range []struct {
		kind, key string
		rate      ratelimit.Rate
	}{
		{"resend-rl", s.clientIP(c), s.opts.ResendRate},
		{"resend-email-rl", emailKey(email), s.opts.ResendEmailRate},
	} {
		over, err := s.over(ctx, l.kind, l.key, l.rate)
		if err != nil {
			return err
		}
		if over {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(l.rate.Window.Seconds())))
			return s.render(c, 429, "message", &message{Heading: "Too many requests for a new link",
				Text: "We have sent several links already. Use the newest one in your inbox (look in the spam folder too), or try again in an hour.",
				Link: "/", LinkText: "Back to the start"})
		}
	}
	tok, sum := newToken()
	now := s.opts.Now()
	// One statement: the newest pending sign-up of the address that can
	// still be verified gets the new token and a new 24 hours.
	var shopName, slug string
	err := s.db.QueryRow(ctx, `UPDATE signups SET token_hash = $2, expires_at = $3
WHERE id = (SELECT id FROM signups WHERE lower(email) = lower($1) AND status = 'pending' AND expires_at > $4
            ORDER BY created_at DESC, id DESC LIMIT 1)
  AND status = 'pending'
RETURNING shop_name, slug`, email, sum, now.Add(TokenTTL), now).Scan(&shopName, &slug)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// No pending sign-up: nothing to send, and the same answer.
	case err != nil:
		return fmt.Errorf("renew sign-up link: %w", err)
	default:
		if err := s.sendVerification(ctx, email, shopName, slug, tok); err != nil {
			return err
		}
	}
	return c.Redirect("/signup/sent", fiber.StatusSeeOther)
}

// sendVerification mails the link that verifies a sign-up: the first one
// and every one asked for again.
func (s *Site) sendVerification(ctx context.Context, email, shopName, slug, tok string) error {
	link := s.opts.SiteURL + "/verify?token=" + url.QueryEscape(tok)
	return s.send(ctx, email, "Confirm your email to create "+shopName,
		"Welcome! Confirm your email address to create your shop "+shopName+" at "+slug+"."+s.opts.BaseDomain+":\n\n  "+
			link+"\n\nThe link works once, for 24 hours. If you did not sign up, ignore this email.\n")
}

// emailKey names an address in Redis keys without writing it there.
func emailKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:16])
}

// over counts one request under kind and key in a fixed window of rate and
// reports whether it is past the rate. A Redis failure fails closed.
func (s *Site) over(ctx context.Context, kind, key string, rate ratelimit.Rate) (bool, error) {
	if rate.Off() {
		return false, nil
	}
	win := s.opts.Now().UnixNano() / int64(rate.Window)
	k := s.opts.RedisPrefix + "platform:" + kind + ":" + key + ":" + strconv.FormatInt(win, 10)
	var cnt *redis.IntCmd
	_, err := s.opts.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		cnt = p.Incr(ctx, k)
		p.Expire(ctx, k, rate.Window+time.Second)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sign-up rate limit %s: %w", kind, err)
	}
	return cnt.Val() > int64(rate.N), nil
}
