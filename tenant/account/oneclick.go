package account

import (
	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
)

// OneClickPath is the RFC 8058 one-click unsubscribe endpoint campaign
// mails name in List-Unsubscribe. A mail client posts to it without the
// member's CSRF token, so the CSRF middleware exempts this one path; the
// signed unsubscribe token in its query is what authenticates it.
const OneClickPath = "/user/email-unsubscribe-one-click"

// unsubscribeOneClick unsubscribes the holder of the URL's token (token for
// a member, pr_token for a prospect) on a POST, as RFC 8058 asks. Like the
// confirm step it replaces the token, so the used link stops working;
// posting it again answers member-not-found and changes nothing.
func (a *App) unsubscribeOneClick(c *fiber.Ctx) error {
	const key = "email_unsubscribe_one_click"
	if c.Method() != fiber.MethodPost {
		return unsubscribeError(c, key, "post-required")
	}
	args := c.Context().QueryArgs()
	token, prospect := text(args.Peek("token")), false
	if token == "" {
		token, prospect = text(args.Peek("pr_token")), true
	}
	if token == "" {
		return unsubscribeError(c, key, "token-required")
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	var code string
	err = a.tx(r, func(tx pgx.Tx) error {
		var rc *recipient
		rc, code, err = findRecipient(r, tx, token, prospect, true)
		if err != nil || code != "" || rc.unsubscribed {
			return err
		}
		_, err = unsubscribe(r, tx, rc, prospect)
		return err
	})
	if err != nil {
		return err
	}
	if code != "" {
		return unsubscribeError(c, key, code)
	}
	return reply(c, fiber.Map{key: "success"})
}
