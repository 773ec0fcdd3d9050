package shop

import (
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/tenant/cart"
)

const usernameSQL = `SELECT username FROM account WHERE id = $1`

// checkoutAllowed reports §5.1 "Checkout allowed": the visitor's username
// (signed in) or an_ct value (anonymous) is in the configured list, or the
// list holds "*".
func (rq *request) checkoutAllowed() (bool, error) {
	o, err := rq.who()
	if err != nil {
		return false, err
	}
	cfgKey, who := "an_ct_values_allowed_to_checkout", o.AnonymousID
	if o.MemberID > 0 {
		cfgKey = "usernames_allowed_to_checkout"
		if err := rq.conn.QueryRow(rq.ctx, usernameSQL, rq.accountID).Scan(&who); err != nil {
			return false, fmt.Errorf("username: %w", err)
		}
	}
	list, err := rq.config(cfgKey)
	if err != nil || list == nil {
		return false, err
	}
	for _, v := range strings.Split(*list, ",") {
		if v == "*" || (v == who && who != "") {
			return true, nil
		}
	}
	return false, nil
}

// gated runs fn only when checkout is allowed, else answers
// {"checkout_allowed": false}.
func (a *App) gated(c *fiber.Ctx, fn func(rq *request) error) error {
	return a.with(c, func(rq *request) error {
		ok, err := rq.checkoutAllowed()
		if err != nil {
			return err
		}
		if !ok {
			return reply(c, object{{"checkout_allowed", false}})
		}
		return fn(rq)
	})
}

// O11 GET /order/checkout-allowed.
func (a *App) checkoutAllowed(c *fiber.Ctx) error {
	return a.with(c, func(rq *request) error {
		ok, err := rq.checkoutAllowed()
		if err != nil {
			return err
		}
		return reply(c, object{{"checkout_allowed", ok}})
	})
}

// O12 GET /order/confirm-items.
func (a *App) confirmItems(c *fiber.Ctx) error {
	return a.gated(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		var lines []cart.Line
		if found {
			if lines, err = cart.Lines(rq.ctx, rq.conn, ct.ID); err != nil {
				return err
			}
		}
		return reply(c, object{{"checkout_allowed", true}, {"cart_found", found}, {"item_data", itemData(lines, found)}})
	})
}

// O13 GET /order/confirm-shipping-method (no default is applied here).
func (a *App) confirmShippingMethod(c *fiber.Ctx) error {
	return a.gated(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		var m *cart.ShippingMethod
		if found {
			if m, err = cart.SelectedShipping(rq.ctx, rq.conn, ct.ID); err != nil {
				return err
			}
		}
		return reply(c, object{{"checkout_allowed", true}, {"cart_found", found}, {"confirm_shipping_method", methodObject(m)}})
	})
}

// O14 GET /order/confirm-totals.
func (a *App) confirmTotals(c *fiber.Ctx) error {
	return a.gated(c, func(rq *request) error {
		cc, found, err := rq.totals()
		if err != nil {
			return err
		}
		return reply(c, object{{"checkout_allowed", true}, {"cart_found", found}, {"confirm_totals_data", cc.Totals}})
	})
}
