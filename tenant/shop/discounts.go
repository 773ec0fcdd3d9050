package shop

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/tenant/cart"
)

// discountObject is the seed-era discount code object (§11), keyed by the
// discount code id in discount_code_data.
func discountObject(d cart.Discount) object {
	return object{
		{"discount_code_id", d.CodeID}, {"code", d.Code}, {"description", d.Description},
		{"start_date_time", timestamp(d.Start)}, {"end_date_time", timestamp(d.End)},
		{"combinable", d.Combinable}, {"discount_amount", money(d.Amount)}, {"order_minimum", money(d.OrderMinimum)},
		{"discounttype__title", d.TypeTitle}, {"discounttype__description", d.TypeDesc},
		{"discounttype__applies_to", d.AppliesTo}, {"discounttype__action", d.Action},
		{"discount_applied", d.Applied},
	}
}

func discountData(cc cart.Contents) object {
	out := object{}
	for _, d := range cc.Discounts {
		out = append(out, kv{fmt.Sprint(d.CodeID), discountObject(d)})
	}
	return out
}

// GET /order/cart-discount-codes (seed era).
func (a *App) cartDiscountCodes(c *fiber.Ctx) error {
	return a.with(c, func(rq *request) error {
		cc, found, err := rq.totals()
		if err != nil {
			return err
		}
		return reply(c, object{{"cart_found", found}, {"discount_code_data", discountData(cc)}})
	})
}

// GET /order/confirm-discount-codes (seed era, checkout-gated).
func (a *App) confirmDiscountCodes(c *fiber.Ctx) error {
	return a.gated(c, func(rq *request) error {
		cc, found, err := rq.totals()
		if err != nil {
			return err
		}
		return reply(c, object{{"checkout_allowed", true}, {"cart_found", found}, {"discount_code_data", discountData(cc)}})
	})
}

// POST /order/cart-apply-discount-code: discount_code_id is the code text.
func (a *App) cartApplyDiscountCode(c *fiber.Ctx) error {
	const key = "cart_apply_discount_code"
	return a.with(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		if !found {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "cart-not-found"}}}})
		}
		code, ok := formValue(c, "discount_code_id")
		if !ok || code == "" {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "discount-code-required"}}}})
		}
		fail := func(e string) error {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", e}}}, {"discount_code_id", code}})
		}
		switch err := cart.ApplyDiscount(rq.ctx, rq.conn, ct.ID, code, time.Now()); {
		case errors.Is(err, cart.ErrCodeNotFound):
			return fail("cart-discount-code-not-found")
		case errors.Is(err, cart.ErrCodeNotActive):
			return fail("cart-discount-code-not-active")
		case errors.Is(err, cart.ErrCodeAlreadyApplied):
			return fail("cart-discount-code-already-applied")
		case err != nil:
			return err
		}
		cc, err := cart.Load(rq.ctx, rq.conn, ct)
		if err != nil {
			return err
		}
		return reply(c, object{{key, "success"}, {"cart_found", true}, {"discount_code_id", code},
			{"discount_code_data", discountData(cc)}, {"cart_totals_data", cc.Totals}})
	})
}

// POST /order/cart-remove-discount-code: discount_code_id is the numeric id.
func (a *App) cartRemoveDiscountCode(c *fiber.Ctx) error {
	const key = "cart_remove_discount_code"
	return a.with(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		if !found {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "cart-not-found"}}}})
		}
		posted, ok := formValue(c, "discount_code_id")
		if !ok || strings.TrimSpace(posted) == "" {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "discount-code-required"}}}})
		}
		id, ok := pyInt(posted)
		if ok {
			if ok, err = cart.RemoveDiscount(rq.ctx, rq.conn, ct.ID, id); err != nil {
				return err
			}
		}
		if !ok {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "cart-discount-code-not-found"}}}, {"discount_code_id", posted}})
		}
		cc, err := cart.Load(rq.ctx, rq.conn, ct)
		if err != nil {
			return err
		}
		return reply(c, object{{key, "success"}, {"cart_found", true}, {"discount_code_id", posted},
			{"discount_code_data", discountData(cc)}, {"cart_totals_data", cc.Totals}})
	})
}
