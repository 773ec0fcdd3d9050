package shop

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/tenant/cart"
)

// lineObject is the contract's cart line object (§5.1).
func lineObject(l cart.Line, withInventoryIdentifier bool) object {
	o := object{
		{"sku_id", l.SKUID},
		{"sku_type__title", l.SKUType},
		{"sku_inventory__title", l.InventoryTitle},
	}
	if withInventoryIdentifier {
		o = append(o, kv{"sku_inventory__identifier", l.InventoryIdentifier})
	}
	return append(o,
		kv{"color", l.Color}, kv{"size", l.Size}, kv{"description", l.Description},
		kv{"price", money(l.Price)}, kv{"quantity", l.Quantity},
		kv{"parent_product__title", l.ProductTitle}, kv{"parent_product__title_url", l.ProductTitleURL},
		kv{"parent_product__identifier", l.ProductIdentifier}, kv{"sku_image_url", l.ImageURL},
	)
}

// itemData is O3's item_data for a cart (nil: no cart).
func itemData(lines []cart.Line, found bool) object {
	if !found {
		return object{}
	}
	skus := object{}
	n := 0
	for _, l := range lines {
		if l.IsProduct() {
			skus = append(skus, kv{counter(n), lineObject(l, true)})
			n++
		}
	}
	return object{{"product_sku_data", skus}}
}

func methodObject(m *cart.ShippingMethod) object {
	if m == nil {
		return object{}
	}
	return object{{"identifier", m.Identifier}, {"carrier", m.Carrier}, {"shipping_cost", money(m.Cost)}, {"tracking_code_base_url", m.TrackingURL}}
}

// activeMethods lists active methods, dearest first, keyed "0", "1", ….
func (rq *request) activeMethods() (object, error) {
	ms, err := cart.ActiveShippingMethods(rq.ctx, rq.conn)
	if err != nil {
		return nil, err
	}
	return methodList(ms), nil
}

// methodList keys methods "0", "1", … in their order.
func methodList(ms []cart.ShippingMethod) object {
	out := object{}
	for i := range ms {
		out = append(out, kv{counter(len(out)), methodObject(&ms[i])})
	}
	return out
}

// config reads an order_configuration string (nil when absent or NULL).
func (rq *request) config(key string) (*string, error) {
	var v *string
	err := rq.conn.QueryRow(rq.ctx, `SELECT string_value FROM order_configuration WHERE key = $1 ORDER BY id LIMIT 1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("order configuration %s: %w", key, err)
	}
	return v, nil
}

// O3 GET /order/cart-items.
func (a *App) cartItems(c *fiber.Ctx) error {
	return a.with(c, func(rq *request) error {
		cc, found, err := rq.readContents(false)
		if err != nil {
			return err
		}
		return reply(c, object{{"cart_found", found}, {"item_data", itemData(cc.Lines, found)}})
	})
}

// O4 GET /order/cart-shipping-methods: selects the configured default
// method for a cart that has none. The cart, its method and the active
// methods are read in one round trip; only the first visit, which selects
// the default, costs more.
func (a *App) cartShippingMethods(c *fiber.Ctx) error {
	return a.with(c, func(rq *request) error {
		var (
			ct      cart.Cart
			found   bool
			sel     *cart.ShippingMethod
			methods []cart.ShippingMethod
		)
		err := rq.readCart(func(b *pgx.Batch, of cart.Of) {
			cart.QueueCart(b, of, &ct, &found)
			cart.QueueShipping(b, of, &sel)
			cart.QueueActiveShippingMethods(b, &methods)
		})
		if err != nil {
			return err
		}
		if !found {
			return reply(c, object{{"cart_found", false}, {"cart_shipping_methods", object{}}, {"shipping_method_selected", nil}})
		}
		if sel == nil {
			def, err := rq.config("default_shipping_method")
			if err != nil {
				return err
			}
			if def != nil {
				if err := cart.SelectShippingIfNone(rq.ctx, rq.conn, ct.ID, *def); err != nil {
					return err
				}
				if sel, err = cart.SelectedShipping(rq.ctx, rq.conn, ct.ID); err != nil {
					return err
				}
			}
		}
		var selected any
		if sel != nil {
			selected = sel.Identifier
		}
		return reply(c, object{{"cart_found", true}, {"cart_shipping_methods", methodList(methods)}, {"shipping_method_selected", selected}})
	})
}

// totals returns the visitor's cart (if any) and its totals, in one round
// trip.
func (rq *request) totals() (cart.Contents, bool, error) { return rq.readContents(true) }

// O5 GET /order/cart-totals.
func (a *App) cartTotals(c *fiber.Ctx) error {
	return a.with(c, func(rq *request) error {
		cc, found, err := rq.totals()
		if err != nil {
			return err
		}
		return reply(c, object{{"cart_found", found}, {"cart_totals_data", cc.Totals}})
	})
}

// cartLineError answers the shared error outcomes of O6 and O7.
func cartLineError(c *fiber.Ctx, key, code string, skuID *string) error {
	o := object{{key, "error"}, {"errors", object{{"error", code}}}}
	if skuID != nil {
		o = append(o, kv{"sku_id", *skuID})
	}
	return reply(c, o)
}

// O6 POST /order/cart-update-sku-quantity.
func (a *App) cartUpdateSKUQuantity(c *fiber.Ctx) error {
	const key = "cart_update_sku_quantity"
	return a.with(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		if !found {
			return cartLineError(c, key, "cart-not-found", nil)
		}
		posted, ok := formValue(c, "sku_id")
		if !ok {
			return cartLineError(c, key, "sku-id-required", nil)
		}
		skuID, ok := pyInt(posted)
		var lineID int64
		if ok {
			if lineID, ok, err = cart.LineOf(rq.ctx, rq.conn, ct.ID, skuID); err != nil {
				return err
			}
		}
		if !ok {
			return cartLineError(c, key, "cart-sku-not-found", &posted)
		}
		rawQty, present := formValue(c, "quantity")
		if !present {
			return badRequest(c, "quantity")
		}
		qty, ok := pyInt(rawQty)
		if !ok || qty < 0 || qty > 1<<31-1 {
			return cartLineError(c, key, "cart-sku-not-found", &posted)
		}
		if err := cart.SetQuantity(rq.ctx, rq.conn, lineID, int(qty)); err != nil {
			return err
		}
		cc, err := cart.Load(rq.ctx, rq.conn, ct)
		if err != nil {
			return err
		}
		subtotal := decimal.Zero
		for _, l := range cc.Lines {
			if l.ID == lineID {
				subtotal = l.Subtotal()
			}
		}
		return reply(c, object{{key, "success"}, {"cart_found", true}, {"sku_id", posted},
			{"sku_subtotal", money(subtotal)}, {"cart_totals_data", cc.Totals}})
	})
}

// O7 POST /order/cart-remove-sku: also clears the selected shipping method.
func (a *App) cartRemoveSKU(c *fiber.Ctx) error {
	const key = "cart_remove_sku"
	return a.with(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		if !found {
			return cartLineError(c, key, "cart-not-found", nil)
		}
		posted, ok := formValue(c, "sku_id")
		if !ok {
			return cartLineError(c, key, "sku-id-required", nil)
		}
		skuID, ok := pyInt(posted)
		if ok {
			if ok, err = cart.RemoveSKU(rq.ctx, rq.conn, ct.ID, skuID); err != nil {
				return err
			}
		}
		if !ok {
			return cartLineError(c, key, "cart-sku-not-found", &posted)
		}
		cc, err := cart.Load(rq.ctx, rq.conn, ct)
		if err != nil {
			return err
		}
		methods, err := rq.activeMethods()
		if err != nil {
			return err
		}
		return reply(c, object{{key, "success"}, {"cart_found", true}, {"sku_id", posted},
			{"cart_item_count", len(cc.Lines)}, {"cart_shipping_methods", methods},
			{"shipping_method_selected", nil}, {"cart_totals_data", cc.Totals}})
	})
}

// O8 POST /order/cart-update-shipping-method (inactive methods are accepted,
// as upstream).
func (a *App) cartUpdateShippingMethod(c *fiber.Ctx) error {
	const key = "cart_update_shipping_method"
	return a.with(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		if !found {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "cart-not-found"}}}})
		}
		ident, ok := formValue(c, "shipping_method_identifier")
		if !ok {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "shipping-method-identifier-required"}}}})
		}
		selected, err := cart.SelectShipping(rq.ctx, rq.conn, ct.ID, ident)
		if err != nil {
			return err
		}
		if !selected {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "error-setting-cart-shipping-method"}}}, {"shipping_method_identifier", ident}})
		}
		cc, err := cart.Load(rq.ctx, rq.conn, ct)
		if err != nil {
			return err
		}
		return reply(c, object{{key, "success"}, {"cart_found", true}, {"shipping_method_identifier", ident}, {"cart_totals_data", cc.Totals}})
	})
}

// O9 POST /order/cart-delete-cart (the an_ct cookie is left as is).
func (a *App) cartDeleteCart(c *fiber.Ctx) error {
	return a.with(c, func(rq *request) error {
		ct, found, err := rq.currentCart()
		if err != nil {
			return err
		}
		if !found {
			return reply(c, object{{"cart_delete_cart", "error"}, {"errors", object{{"error", "cart-not-found"}}}})
		}
		if err := cart.Delete(rq.ctx, rq.conn, ct.ID); err != nil {
			return err
		}
		return reply(c, object{{"cart_delete_cart", "success"}})
	})
}

// Quantity validation errors of O10 (§2.1), nested twice as upstream.
var (
	errNotAnInt   = object{{"type", "not_an_int"}, {"description", "The value provided is not an integer."}}
	errOutOfRange = object{{"type", "out_of_range"}, {"description", "The value provided is out of range."}}
)

// skuOfProductSQL finds a SKU that is on sale: linked to a product the back
// office has not archived.
const skuOfProductSQL = `SELECT s.id FROM sku s JOIN product_sku ps ON ps.sku_id = s.id JOIN product p ON p.id = ps.product_id
WHERE s.id = $1 AND p.archived_at IS NULL`

// O10 POST /order/cart-add-product-sku. Unlike upstream, the cart is created
// only when the add succeeds (§12 Q24), and an anonymous cart keeps its id
// (the cookie is re-sent with a fresh expiry), so two adds racing from one
// browser cannot split its cart.
func (a *App) cartAddProductSKU(c *fiber.Ctx) error {
	const key = "cart_add_product_sku"
	return a.with(c, func(rq *request) error {
		posted, ok := formValue(c, "sku_id")
		if !ok {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "sku-id-required"}}}, {"sku_id", nil}})
		}
		rawQty, present := formValue(c, "quantity")
		if !present {
			return badRequest(c, "quantity")
		}
		qty, ok := pyInt(rawQty)
		if !ok {
			return reply(c, object{{key, "error"}, {"errors", object{{"quantity", []any{[]any{errNotAnInt}}}}}, {"sku_id", posted}})
		}
		if qty < 0 || qty > 99 {
			return reply(c, object{{key, "error"}, {"errors", object{{"quantity", []any{[]any{errOutOfRange}}}}}, {"sku_id", posted}})
		}
		skuID, ok := pyInt(posted)
		if ok {
			err := rq.conn.QueryRow(rq.ctx, skuOfProductSQL, skuID).Scan(&skuID)
			if errors.Is(err, pgx.ErrNoRows) {
				ok = false
			} else if err != nil {
				return fmt.Errorf("sku: %w", err)
			}
		}
		if !ok {
			return reply(c, object{{key, "error"}, {"errors", object{{"error", "sku-not-found"}}}, {"sku_id", posted}})
		}
		o, err := rq.who()
		if err != nil {
			return err
		}
		var count int
		var ct cart.Cart
		err = pgx.BeginFunc(rq.ctx, rq.conn, func(tx pgx.Tx) error {
			var err error
			if ct, _, err = cart.FindOrCreate(rq.ctx, tx, o); err != nil {
				return err
			}
			count, err = cart.Add(rq.ctx, tx, ct.ID, skuID, int(qty))
			return err
		})
		if err != nil {
			return err
		}
		if o.MemberID == 0 {
			k, err := rq.signingKey()
			if err != nil {
				return err
			}
			cart.SetCookie(c, k, ct.AnonymousID)
		}
		return reply(c, object{{key, "success"}, {"sku_id", strings.Clone(posted)}, {"cart_item_count", count}})
	})
}
