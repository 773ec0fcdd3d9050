package admin

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The rest of the catalogue editor's pages: a product's fields, archiving,
// its SKUs; shipping methods, discount codes and terms of use. Thin forms
// over the functions the API uses.

func (a *App) mountCatalogPages(g fiber.Router) {
	post := func(path string, acc access, h fiber.Handler) { g.Post(path, a.pageGuard(acc), h) }
	post("/products/:id", anyStaff, a.pageProductUpdate)
	post("/products/:id/archive", anyStaff, a.pageProductArchive)
	post("/products/:id/skus/:sku", anyStaff, a.pageSKUUpdate)
	g.Get("/shop-rules", a.pageGuard(anyStaff), a.pageRules)
	post("/shipping-methods/:id", anyStaff, a.pageShippingUpdate)
	post("/discount-codes", anyStaff, a.pageDiscountCreate)
	g.Get("/discount-codes/:id", a.pageGuard(anyStaff), a.pageDiscount)
	post("/discount-codes/:id", anyStaff, a.pageDiscountUpdate)
	post("/terms", ownerOnly, a.pageTermsPublish)
}

// formText is a form field as a pointer, for the partial-update inputs.
func formText(c *fiber.Ctx, name string) *string {
	v := c.FormValue(name)
	return &v
}

func (a *App) pageProductUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	in := productIn{Title: formText(c, "title"), TitleURL: formText(c, "title_url"), Headline: formText(c, "headline"),
		Description1: formText(c, "description_part_1"), Description2: formText(c, "description_part_2")}
	if v := strings.TrimSpace(c.FormValue("display_order")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return a.productWith(c, "", invalid("display_order", "display_order must be a whole number"))
		}
		in.DisplayOrder = &n
	}
	if _, err := a.saveProduct(a.r(c), id, in); err != nil {
		return a.productWith(c, "", err)
	}
	return a.productWith(c, "Product saved; the shop shows it within a second.", nil)
}

func (a *App) pageProductArchive(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	archive := c.FormValue("action") == "archive"
	if c.FormValue("confirm") != "yes" {
		return a.productWith(c, "", &apiError{Status: fiber.StatusBadRequest, Code: "confirm", Field: "confirm", Detail: "tick the box to confirm"})
	}
	if _, err := a.saveProduct(a.r(c), id, productIn{Archived: &archive}); err != nil {
		return a.productWith(c, "", err)
	}
	if archive {
		return a.productWith(c, "Archived: the shop no longer lists or shows it, and its SKUs cannot be added to carts. Orders keep it.", nil)
	}
	return a.productWith(c, "Restored: the product is on sale again.", nil)
}

func (a *App) pageSKUUpdate(c *fiber.Ctx) error {
	sku, err := paramID(c, "sku")
	if err != nil {
		return err
	}
	in := skuIn{Color: formText(c, "color"), Size: formText(c, "size"), Description: formText(c, "description"), Inventory: formText(c, "inventory")}
	if _, err := a.updateSKU(a.r(c), sku, in); err != nil {
		return a.productWith(c, "", err)
	}
	return a.productWith(c, "SKU "+strconv.FormatInt(sku, 10)+" saved.", nil)
}

// rulesPage is the shipping, discount and terms page.
type rulesPage struct {
	Shipping  []shippingJSON
	Discounts []discountJSON
	Next      string
	Terms     []termsJSON
	Types     []string
}

var discountTypes = []string{"percent-off", "dollar-amt-off", "free-usps-ground-shipping", "free-digital-months"}

func (a *App) pageRules(c *fiber.Ctx) error { return a.rulesWith(c, "", nil) }

func (a *App) rulesWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Shipping, discounts and terms", "rules")
	d := &rulesPage{Types: discountTypes}
	v.Data, v.Notice = d, notice
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "rules", v, err)
	}
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		d.Shipping, err = shippingMethods(r, conn, "true")
		return err
	}); err != nil {
		return err
	}
	if d.Discounts, d.Next, err = a.listDiscounts(r, p); err != nil {
		return err
	}
	if d.Terms, err = a.listTerms(r); err != nil {
		return err
	}
	markDone(c, v, actionErr)
	if actionErr != nil {
		keepForm(c, v, "code", "description", "start_date_time", "end_date_time", "discount_amount", "order_minimum", "discount_type", "combinable", "version_note")
	}
	return a.render(c, "rules", v, actionErr)
}

func (a *App) pageShippingUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	active := c.FormValue("active") == "yes"
	in := shippingIn{Active: &active}
	if in.Cost, err = formAmount(c, "shipping_cost"); err != nil {
		return a.rulesWith(c, "", err)
	}
	m, err := a.updateShipping(a.r(c), id, in)
	if err != nil {
		return a.rulesWith(c, "", err)
	}
	return a.rulesWith(c, "Shipping method "+m.Identifier+" saved.", nil)
}

// formTime reads a datetime-local field, in UTC; "" is none.
func formTime(c *fiber.Ctx, name string) (*time.Time, error) {
	v := strings.TrimSpace(c.FormValue(name))
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return &t, nil
		}
	}
	return nil, invalid(name, name+" must be a date and time such as 2026-01-31T09:00")
}

// discountForm reads the discount code form: every field, as an edit
// replaces them all.
func discountForm(c *fiber.Ctx) (discountIn, error) {
	combinable := c.FormValue("combinable") == "yes"
	in := discountIn{Code: formText(c, "code"), Description: formText(c, "description"), Type: formText(c, "discount_type"), Combinable: &combinable}
	var err error
	if in.Start, err = formTime(c, "start_date_time"); err != nil {
		return in, err
	}
	if in.End, err = formTime(c, "end_date_time"); err != nil {
		return in, err
	}
	if in.Amount, err = formAmount(c, "discount_amount"); err != nil {
		return in, err
	}
	if in.OrderMinimum, err = formAmount(c, "order_minimum"); err != nil {
		return in, err
	}
	return in, nil
}

func (a *App) pageDiscountCreate(c *fiber.Ctx) error {
	in, err := discountForm(c)
	if err != nil {
		return a.rulesWith(c, "", err)
	}
	d, err := a.saveDiscount(a.r(c), 0, in)
	if err != nil {
		return a.rulesWith(c, "", err)
	}
	return a.rulesWith(c, "Discount code "+d.Code+" created.", nil)
}

func (a *App) pageDiscount(c *fiber.Ctx) error { return a.discountWith(c, "", nil) }

func (a *App) discountWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return a.render(c, "done", a.view(r, "Not found", "rules"), err)
	}
	var d *discountJSON
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		d, err = loadDiscount(r, conn, id, false)
		return err
	}); err != nil {
		return err
	}
	if d == nil {
		return a.render(c, "done", a.view(r, "Not found", "rules"), errNotFound)
	}
	v := a.view(r, "Discount code "+d.Code, "rules")
	markDone(c, v, actionErr)
	if actionErr != nil {
		keepForm(c, v, "code", "description", "start_date_time", "end_date_time", "discount_amount", "order_minimum", "discount_type", "combinable")
	} else {
		combinable := ""
		if d.Combinable {
			combinable = "yes"
		}
		for k, val := range map[string]string{"code": d.Code, "description": d.Description, "discount_type": d.Type,
			"discount_amount": d.Amount.StringFixed(2), "order_minimum": d.OrderMinimum.StringFixed(2),
			"start_date_time": d.Start.UTC().Format("2006-01-02T15:04"), "end_date_time": d.End.UTC().Format("2006-01-02T15:04"), "combinable": combinable} {
			v.Form[k] = val
		}
	}
	v.Data, v.Notice = struct {
		*discountJSON
		Types []string
	}{d, discountTypes}, notice
	return a.render(c, "discount", v, actionErr)
}

func (a *App) pageDiscountUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	in, err := discountForm(c)
	if err == nil {
		_, err = a.saveDiscount(a.r(c), id, in)
	}
	if err != nil {
		return a.discountWith(c, "", err)
	}
	return a.discountWith(c, "Saved. Carts holding the code total with it from now on.", nil)
}

func (a *App) pageTermsPublish(c *fiber.Ctx) error {
	t, err := a.publishTerms(a.r(c), termsIn{Note: c.FormValue("version_note")})
	if err != nil {
		return a.rulesWith(c, "", err)
	}
	return a.rulesWith(c, "Terms of use version "+strconv.Itoa(t.Version)+" published.", nil)
}

// keepForm shows the posted values again after a refusal.
func keepForm(c *fiber.Ctx, v *view, names ...string) {
	for _, k := range names {
		v.Form[k] = c.FormValue(k)
	}
}
