package admin

import (
	"path"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// The catalogue and order pages: thin forms over the same functions as the
// API.

func (a *App) mountOrderPages(g fiber.Router) {
	post := func(path string, h fiber.Handler) { g.Post(path, a.pageGuard(anyStaff), h) }
	g.Get("/products", a.pageGuard(anyStaff), a.pageProducts)
	post("/products", a.pageProductCreate)
	g.Get("/products/:id", a.pageGuard(anyStaff), a.pageProduct)
	post("/products/:id/skus", a.pageSKUCreate)
	post("/products/:id/skus/:sku/price", a.pageSKUPrice)
	g.Get("/orders", a.pageGuard(anyStaff), a.pageOrders)
	g.Get("/orders/:identifier", a.pageGuard(anyStaff), a.pageOrder)
	post("/orders/:identifier/status", a.pageOrderStatus)
	post("/orders/:identifier/refund", a.pageOrderRefund)
}

// formAmount reads a money field of a form; "" is none.
func formAmount(c *fiber.Ctx, name string) (*amountIn, error) {
	s := c.FormValue(name)
	if s == "" {
		return nil, nil
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return nil, invalid(name, name+" must be an amount such as 12.50")
	}
	return &amountIn{d}, nil
}

type productsPage struct {
	Items    []productJSON
	Next     string
	Archived string // the filter: "", "true" or "false"
}

func (a *App) pageProducts(c *fiber.Ctx) error { return a.productsWith(c, nil) }

func (a *App) productsWith(c *fiber.Ctx, actionErr error) error {
	r := a.r(c)
	v := a.view(r, "Catalogue", "catalog")
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "products", v, err)
	}
	archived, err := archivedFilter(c.Query("archived"))
	if err != nil {
		return a.render(c, "products", v, err)
	}
	items, err := a.listProducts(r, p, archived)
	if err != nil {
		return err
	}
	d := productsPage{Items: items, Archived: c.Query("archived")}
	if len(items) > p.limit {
		d.Items, d.Next = items[:p.limit], encodeCursor(items[p.limit-1].ID)
	}
	v.Data = d
	if actionErr != nil {
		for _, k := range []string{"title", "title_url", "headline", "description_part_1", "image_url"} {
			v.Form[k] = c.FormValue(k)
		}
	}
	return a.render(c, "products", v, actionErr)
}

func (a *App) pageProductCreate(c *fiber.Ctx) error {
	in := productIn{}
	for k, dst := range map[string]**string{"title": &in.Title, "title_url": &in.TitleURL, "headline": &in.Headline, "description_part_1": &in.Description1} {
		s := c.FormValue(k)
		*dst = &s
	}
	if u := c.FormValue("image_url"); u != "" {
		in.Images = &[]mediaIn{{URL: u, Main: true}}
	}
	p, err := a.saveProduct(a.r(c), 0, in)
	if err != nil {
		return a.productsWith(c, err)
	}
	return c.Redirect("/admin/products/"+strconv.FormatInt(p.ID, 10), fiber.StatusSeeOther)
}

func (a *App) pageProduct(c *fiber.Ctx) error { return a.productWith(c, "", nil) }

func (a *App) productWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return a.render(c, "done", a.view(r, "Not found", "catalog"), err)
	}
	var p *productJSON
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		p, err = loadProduct(r, conn, id)
		return err
	}); err != nil {
		return err
	}
	if p == nil {
		return a.render(c, "done", a.view(r, "Not found", "catalog"), errNotFound)
	}
	v := a.view(r, p.Title, "catalog")
	v.Data, v.Notice = p, notice
	markDone(c, v, actionErr)
	if actionErr != nil {
		for _, k := range []string{"color", "size", "description", "inventory", "price"} {
			v.Form[k] = c.FormValue(k)
		}
	}
	return a.render(c, "product", v, actionErr)
}

func (a *App) pageSKUCreate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	price, err := formAmount(c, "price")
	if err != nil {
		return a.productWith(c, "", err)
	}
	color, size, desc, inv := c.FormValue("color"), c.FormValue("size"), c.FormValue("description"), c.FormValue("inventory")
	_, err = a.createSKU(a.r(c), skuIn{ProductID: &id, Color: &color, Size: &size, Description: &desc, Inventory: &inv, Price: price})
	if err != nil {
		return a.productWith(c, "", err)
	}
	return a.productWith(c, "SKU added.", nil)
}

func (a *App) pageSKUPrice(c *fiber.Ctx) error {
	sku, err := paramID(c, "sku")
	if err != nil {
		return err
	}
	price, err := formAmount(c, "price")
	if err == nil {
		_, err = a.addPrice(a.r(c), sku, price)
	}
	if err != nil {
		return a.productWith(c, "", err)
	}
	return a.productWith(c, "Price added; it is the price from now on.", nil)
}

type ordersPage struct {
	Items    []orderSummaryJSON
	Next     string
	Filter   map[string]string
	Statuses []string
}

var statusOrder = []string{"accepted", "manufacturing", "packing", "shipped", "delivered", "cancelled", "refunded"}

func (a *App) pageOrders(c *fiber.Ctx) error {
	r := a.r(c)
	v := a.view(r, "Orders", "orders")
	d := ordersPage{Filter: map[string]string{}, Statuses: statusOrder}
	for _, k := range []string{"status", "email", "identifier", "q", "from", "to"} {
		d.Filter[k] = c.Query(k)
	}
	v.Data = &d
	p, err := pageOf(c)
	if err != nil {
		return a.render(c, "orders", v, err)
	}
	f, err := filterOf(c)
	if err != nil {
		return a.render(c, "orders", v, err)
	}
	if d.Items, d.Next, err = a.listOrders(r, p, f); err != nil {
		return err
	}
	return a.render(c, "orders", v, nil)
}

type orderPage struct {
	*orderDetailJSON
	Methods []shippingJSON
}

func (a *App) pageOrder(c *fiber.Ctx) error { return a.orderWith(c, "", nil) }

func (a *App) orderWith(c *fiber.Ctx, notice string, actionErr error) error {
	r := a.r(c)
	ident, err := orderIdent(c)
	if err == nil {
		var o *orderDetailJSON
		if o, err = a.orderDetail(r, ident); err == nil {
			var methods []shippingJSON
			if err := a.conn(r, func(conn *pgxpool.Conn) error {
				methods, err = shippingMethods(r, conn, "active")
				return err
			}); err != nil {
				return err
			}
			v := a.view(r, "Order "+o.Identifier, "orders")
			v.Data, v.Notice = orderPage{o, methods}, notice
			markDone(c, v, actionErr)
			if actionErr != nil {
				for _, k := range []string{"amount", "reason", "tracking_number"} {
					v.Form[k] = c.FormValue(k)
				}
			}
			return a.render(c, "order", v, actionErr)
		}
	}
	return a.render(c, "done", a.view(r, "Not found", "orders"), err)
}

func (a *App) pageOrderStatus(c *fiber.Ctx) error {
	ident, err := orderIdent(c)
	if err != nil {
		return err
	}
	_, err = a.changeStatus(a.r(c), ident, statusChange{Status: c.FormValue("status"), ShippingMethod: c.FormValue("shipping_method"),
		TrackingNumber: c.FormValue("tracking_number"), Notify: c.FormValue("notify") == "yes"})
	if err != nil {
		return a.orderWith(c, "", err)
	}
	return a.orderWith(c, "Status changed.", nil)
}

func (a *App) pageOrderRefund(c *fiber.Ctx) error {
	ident, err := orderIdent(c)
	if err != nil {
		return err
	}
	if c.FormValue("confirm") != "yes" {
		return a.orderWith(c, "", errConfirm)
	}
	amount, err := formAmount(c, "amount")
	if err == nil {
		// The form's own token makes a resent form the same refund.
		_, err = a.refund(a.r(c), ident, amount, c.FormValue("reason"), c.FormValue("refund_key"))
	}
	if err != nil {
		return a.orderWith(c, "", err)
	}
	return a.orderWith(c, "Refund made.", nil)
}

// moneyText shows an amount as dollars and cents; nil is a dash.
func moneyText(v any) string {
	switch d := v.(type) {
	case decimal.Decimal:
		return "$" + d.StringFixed(2)
	case *decimal.Decimal:
		if d != nil {
			return "$" + d.StringFixed(2)
		}
	}
	return "—"
}

// markDone names the form a page answers, for whoever waits on the result
// (the browser journey): an element #done-<last path segment>.
func markDone(c *fiber.Ctx, v *view, actionErr error) {
	if c.Method() == fiber.MethodPost && actionErr == nil {
		v.Form["done"] = path.Base(c.Path())
	}
}
