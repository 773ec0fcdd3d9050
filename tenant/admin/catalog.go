package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/tenant/account"
)

// The catalogue editor: products, SKUs, prices (a history: a new price is a
// new sku_price row), product-SKU links, shipping methods, discount codes
// and terms-of-use versions. Every write is one transaction with its audit
// row; the shop sees it through the catalogue version its triggers bump.

// text checks a string field: trimmed, required when min > 0, at most max
// characters (the column's length).
func text(field, v string, need bool, max int) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" && need {
		return "", required(field)
	}
	if utf8.RuneCountInString(v) > max {
		return "", invalid(field, fmt.Sprintf("%s is longer than %d characters", field, max))
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return "", invalid(field, field+" is not valid text")
	}
	return v, nil
}

// amountIn is an amount in a request: a JSON number or string. A bad one
// is a type error, so the refusal names its field.
type amountIn struct{ decimal.Decimal }

func (a *amountIn) UnmarshalJSON(b []byte) error {
	if err := a.Decimal.UnmarshalJSON(b); err != nil {
		return &json.UnmarshalTypeError{Value: "amount", Type: reflect.TypeFor[decimal.Decimal]()}
	}
	return nil
}

// money checks an amount: at least 0, whole cents, below NUMERIC(10,2)'s
// limit.
func money(field string, in *amountIn) (decimal.Decimal, error) {
	if in == nil {
		return decimal.Zero, required(field)
	}
	d := &in.Decimal
	switch {
	case d.IsNegative():
		return decimal.Zero, invalid(field, field+" must not be negative")
	case !d.Equal(d.Truncate(2)):
		return decimal.Zero, invalid(field, field+" must be in whole cents")
	case d.GreaterThanOrEqual(decimal.New(1, 8)):
		return decimal.Zero, invalid(field, field+" is too large")
	}
	return d.Round(2), nil
}

var titleURLRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// newProductIdentifier draws a product identifier as upstream's are: 10
// ASCII letters and digits.
func newProductIdentifier() string { return account.RandomString(10) }

type mediaIn struct {
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url"`
	Caption      string `json:"caption"`
	Main         bool   `json:"main"`
}

type productIn struct {
	Title        *string    `json:"title"`
	TitleURL     *string    `json:"title_url"`
	Headline     *string    `json:"headline"`
	Description1 *string    `json:"description_part_1"`
	Description2 *string    `json:"description_part_2"`
	DisplayOrder *int       `json:"display_order"`
	Images       *[]mediaIn `json:"images"`
	Videos       *[]mediaIn `json:"videos"`
	// Archived takes the product off sale (true) or puts it back (false).
	Archived *bool `json:"archived"`
}

type mediaJSON struct {
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	Caption      string `json:"caption"`
	Main         bool   `json:"main"`
}

type productJSON struct {
	ID           int64       `json:"id"`
	Identifier   string      `json:"identifier"`
	Title        string      `json:"title"`
	TitleURL     string      `json:"title_url"`
	Headline     string      `json:"headline"`
	Description1 string      `json:"description_part_1"`
	Description2 string      `json:"description_part_2"`
	DisplayOrder int         `json:"display_order"`
	ArchivedAt   *time.Time  `json:"archived_at"`
	Images       []mediaJSON `json:"images"`
	Videos       []mediaJSON `json:"videos"`
	SKUs         []skuJSON   `json:"skus"`
}

type skuJSON struct {
	ID          int64            `json:"id"`
	ProductID   *int64           `json:"product_id"`
	Color       string           `json:"color"`
	Size        string           `json:"size"`
	Description string           `json:"description"`
	Inventory   string           `json:"inventory"`
	Price       *decimal.Decimal `json:"price"`
	Prices      []priceJSON      `json:"prices,omitempty"`
}

type priceJSON struct {
	ID        int64           `json:"id"`
	Price     decimal.Decimal `json:"price"`
	CreatedAt time.Time       `json:"created_at"`
}

// productFields validates a product body; creating, every required field
// must be there.
func (in *productIn) check(creating bool) error {
	type f struct {
		name     string
		v        **string
		required bool
		max      int
	}
	for _, x := range []f{{"title", &in.Title, true, 200}, {"title_url", &in.TitleURL, true, 100},
		{"headline", &in.Headline, false, 5000}, {"description_part_1", &in.Description1, false, 5000},
		{"description_part_2", &in.Description2, false, 5000}} {
		if *x.v == nil {
			if creating && x.required {
				return required(x.name)
			}
			if creating {
				*x.v = new(string)
			}
			continue
		}
		v, err := text(x.name, **x.v, x.required, x.max)
		if err != nil {
			return err
		}
		**x.v = v
	}
	if in.TitleURL != nil && !titleURLRE.MatchString(*in.TitleURL) {
		return invalid("title_url", "title_url may hold only ASCII letters, digits, - and _")
	}
	if in.DisplayOrder != nil && (*in.DisplayOrder < -1_000_000 || *in.DisplayOrder > 1_000_000) {
		return invalid("display_order", "display_order must be between -1000000 and 1000000")
	}
	for name, list := range map[string]*[]mediaIn{"images": in.Images, "videos": in.Videos} {
		if list == nil {
			continue
		}
		if len(*list) > 50 {
			return invalid(name, name+" holds at most 50 entries")
		}
		for i := range *list {
			m := &(*list)[i]
			var err error
			field := fmt.Sprintf("%s[%d].", name, i)
			if m.URL, err = mediaURL(field+"url", m.URL, true); err != nil {
				return err
			}
			if m.ThumbnailURL, err = mediaURL(field+"thumbnail_url", m.ThumbnailURL, name == "videos"); err != nil {
				return err
			}
			if m.Caption, err = text(field+"caption", m.Caption, false, 500); err != nil {
				return err
			}
		}
	}
	return nil
}

// mediaURL accepts an absolute http(s) URL or a path on the site.
func mediaURL(field, v string, need bool) (string, error) {
	v, err := text(field, v, need, 500)
	if err != nil || v == "" {
		return v, err
	}
	if !(strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://") || (strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//"))) ||
		strings.ContainsAny(v, " \"'<>\\") {
		return "", invalid(field, field+" must be an http(s) URL or a path starting with /")
	}
	return v, nil
}

func (a *App) apiProductList(c *fiber.Ctx) error {
	r := a.r(c)
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	archived, err := archivedFilter(c.Query("archived"))
	if err != nil {
		return err
	}
	out, err := a.listProducts(r, p, archived)
	if err != nil {
		return err
	}
	out, next, _ := pageTail(out, p, func(x productJSON) int64 { return x.ID })
	return c.JSON(listJSON(out, next))
}

// archivedFilter reads ?archived=: "true" only archived products, "false"
// only those on sale, empty both.
func archivedFilter(v string) (*bool, error) {
	switch v {
	case "":
		return nil, nil
	case "true", "false":
		b := v == "true"
		return &b, nil
	}
	return nil, invalid("archived", "archived is true or false")
}

const productColumns = `SELECT id, identifier, title, title_url, coalesce(headline, ''), coalesce(description_part_1, ''),
coalesce(description_part_2, ''), display_order, archived_at FROM product`

// listProducts is a page of products in id order, optionally only the
// archived ones or only those on sale.
func (a *App) listProducts(r *req, p page, archived *bool) ([]productJSON, error) {
	var out []productJSON
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(r.ctx, productColumns+` WHERE ($1 = 0 OR id > $1) AND ($3::boolean IS NULL OR (archived_at IS NOT NULL) = $3)
ORDER BY id LIMIT $2`, p.after, p.limit+1, archived)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanProduct)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	return out, nil
}

func scanProduct(row pgx.CollectableRow) (productJSON, error) {
	var p productJSON
	err := row.Scan(&p.ID, &p.Identifier, &p.Title, &p.TitleURL, &p.Headline, &p.Description1, &p.Description2, &p.DisplayOrder, &p.ArchivedAt)
	p.Images, p.Videos, p.SKUs = []mediaJSON{}, []mediaJSON{}, []skuJSON{}
	return p, err
}

// loadProduct reads a product with its media and SKUs; nil when none.
func loadProduct(r *req, q querier, id int64) (*productJSON, error) {
	rows, err := q.Query(r.ctx, productColumns+` WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanProduct)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if rows, err = q.Query(r.ctx, `SELECT image_url, '', coalesce(caption, ''), main_image FROM product_image WHERE product_id = $1 ORDER BY id`, id); err != nil {
		return nil, err
	}
	if p.Images, err = pgx.CollectRows(rows, pgx.RowToStructByPos[mediaJSON]); err != nil {
		return nil, err
	}
	if rows, err = q.Query(r.ctx, `SELECT video_url, video_thumbnail_url, coalesce(caption, ''), false FROM product_video WHERE product_id = $1 ORDER BY id`, id); err != nil {
		return nil, err
	}
	if p.Videos, err = pgx.CollectRows(rows, pgx.RowToStructByPos[mediaJSON]); err != nil {
		return nil, err
	}
	if p.SKUs, err = skusWhere(r, q, "ps.product_id = $1", id); err != nil {
		return nil, err
	}
	if p.Images == nil {
		p.Images = []mediaJSON{}
	}
	if p.Videos == nil {
		p.Videos = []mediaJSON{}
	}
	return &p, nil
}

const skuSelect = `SELECT s.id, ps.product_id, coalesce(s.color, ''), coalesce(s.size, ''), coalesce(s.description, ''), i.identifier,
(SELECT price FROM sku_price WHERE sku_id = s.id ORDER BY created_date_time DESC, id DESC LIMIT 1)
FROM sku s JOIN sku_inventory i ON i.id = s.sku_inventory_id LEFT JOIN product_sku ps ON ps.sku_id = s.id`

func skusWhere(r *req, q querier, where string, args ...any) ([]skuJSON, error) {
	rows, err := q.Query(r.ctx, skuSelect+" WHERE "+where+" ORDER BY s.id", args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (skuJSON, error) {
		var s skuJSON
		return s, row.Scan(&s.ID, &s.ProductID, &s.Color, &s.Size, &s.Description, &s.Inventory, &s.Price)
	})
	if out == nil {
		out = []skuJSON{}
	}
	return out, err
}

func (a *App) apiProductGet(c *fiber.Ctx) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var p *productJSON
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		p, err = loadProduct(r, conn, id)
		return err
	}); err != nil {
		return fmt.Errorf("product: %w", err)
	}
	if p == nil {
		return errNotFound
	}
	return c.JSON(p)
}

func (a *App) apiProductCreate(c *fiber.Ctx) error {
	var in productIn
	if err := body(c, &in); err != nil {
		return err
	}
	p, err := a.saveProduct(a.r(c), 0, in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(p)
}

func (a *App) apiProductUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in productIn
	if err := body(c, &in); err != nil {
		return err
	}
	p, err := a.saveProduct(a.r(c), id, in)
	if err != nil {
		return err
	}
	return c.JSON(p)
}

// saveProduct creates (id 0) or changes a product; given images or videos
// replace the product's.
func (a *App) saveProduct(r *req, id int64, in productIn) (*productJSON, error) {
	if err := in.check(id == 0); err != nil {
		return nil, err
	}
	var out *productJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		var before *productJSON
		if id == 0 {
			// Every product counts, archived ones too: they are never
			// deleted and can be restored.
			if err := checkLimit(r.ctx, tx, r.tenant.Plan, r.tenant.Plan.Products, "products", `SELECT count(*) FROM product`); err != nil {
				return err
			}
			// A drawn identifier that is taken is drawn again.
			for try := 0; ; try++ {
				ident := newProductIdentifier()
				// Created archived, a product is a draft: off sale until
				// it is restored.
				err := tx.QueryRow(r.ctx, `INSERT INTO product (title, title_url, identifier, headline, description_part_1, description_part_2, display_order, archived_at)
SELECT $1, $2, $3::varchar, $4, $5, $6, $7, CASE WHEN $8 THEN now() END WHERE NOT EXISTS (SELECT 1 FROM product WHERE identifier = $3::varchar) RETURNING id`,
					*in.Title, *in.TitleURL, ident, *in.Headline, *in.Description1, *in.Description2, deref(in.DisplayOrder), deref(in.Archived)).Scan(&id)
				if err == nil {
					break
				}
				if !errors.Is(err, pgx.ErrNoRows) || try > 5 {
					return fmt.Errorf("create product: %w", err)
				}
			}
		} else {
			var err error
			if before, err = loadProduct(r, tx, id); err != nil {
				return err
			}
			if before == nil {
				return errNotFound
			}
			if _, err := tx.Exec(r.ctx, `UPDATE product SET title = coalesce($2, title), title_url = coalesce($3, title_url),
headline = coalesce($4, headline), description_part_1 = coalesce($5, description_part_1),
description_part_2 = coalesce($6, description_part_2), display_order = coalesce($7, display_order),
archived_at = CASE WHEN $8::boolean IS NULL THEN archived_at WHEN $8 THEN coalesce(archived_at, now()) END WHERE id = $1`,
				id, in.Title, in.TitleURL, in.Headline, in.Description1, in.Description2, in.DisplayOrder, in.Archived); err != nil {
				return fmt.Errorf("update product: %w", err)
			}
		}
		if in.Images != nil {
			if _, err := tx.Exec(r.ctx, `DELETE FROM product_image WHERE product_id = $1`, id); err != nil {
				return err
			}
			for _, m := range *in.Images {
				if _, err := tx.Exec(r.ctx, `INSERT INTO product_image (product_id, image_url, main_image, caption) VALUES ($1, $2, $3, $4)`,
					id, m.URL, m.Main, m.Caption); err != nil {
					return err
				}
			}
		}
		if in.Videos != nil {
			if _, err := tx.Exec(r.ctx, `DELETE FROM product_video WHERE product_id = $1`, id); err != nil {
				return err
			}
			for _, m := range *in.Videos {
				if _, err := tx.Exec(r.ctx, `INSERT INTO product_video (product_id, video_url, video_thumbnail_url, caption) VALUES ($1, $2, $3, $4)`,
					id, m.URL, m.ThumbnailURL, m.Caption); err != nil {
					return err
				}
			}
		}
		var err error
		if out, err = loadProduct(r, tx, id); err != nil {
			return err
		}
		action := "product.updated"
		switch {
		case before == nil:
			action = "product.created"
		case before.ArchivedAt == nil && out.ArchivedAt != nil:
			action = "product.archived"
		case before.ArchivedAt != nil && out.ArchivedAt == nil:
			action = "product.restored"
		}
		return r.audit(tx, auditEntry{Action: action, TargetType: "product", TargetID: id, Before: nilIfNone(before), After: out})
	})
	return out, err
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

// nilIfNone keeps a typed nil out of an interface.
func nilIfNone[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}

type skuIn struct {
	ProductID   *int64    `json:"product_id"`
	Color       *string   `json:"color"`
	Size        *string   `json:"size"`
	Description *string   `json:"description"`
	Inventory   *string   `json:"inventory"`
	Price       *amountIn `json:"price"`
}

func (in *skuIn) check(creating bool) error {
	for _, x := range []struct {
		name string
		v    **string
		max  int
	}{{"color", &in.Color, 500}, {"size", &in.Size, 500}, {"description", &in.Description, 1000}} {
		if *x.v == nil {
			if creating {
				*x.v = new(string)
			}
			continue
		}
		v, err := text(x.name, **x.v, false, x.max)
		if err != nil {
			return err
		}
		**x.v = v
	}
	if in.Inventory == nil && creating {
		return required("inventory")
	}
	if creating || in.Price != nil {
		p, err := money("price", in.Price)
		if err != nil {
			return err
		}
		in.Price = &amountIn{p}
	}
	return nil
}

// inventoryID is the sku_inventory row of an inventory status identifier.
func inventoryID(r *req, tx pgx.Tx, ident string) (int64, error) {
	var id int64
	err := tx.QueryRow(r.ctx, `SELECT id FROM sku_inventory WHERE identifier = $1`, ident).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, invalid("inventory", "inventory must be an inventory status identifier (in-stock, back-ordered, out-of-stock)")
	}
	return id, err
}

func (a *App) loadSKU(r *req, q querier, id int64) (*skuJSON, error) {
	list, err := skusWhere(r, q, "s.id = $1", id)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	s := list[0]
	rows, err := q.Query(r.ctx, `SELECT id, price, created_date_time FROM sku_price WHERE sku_id = $1 ORDER BY created_date_time DESC, id DESC`, id)
	if err != nil {
		return nil, err
	}
	if s.Prices, err = pgx.CollectRows(rows, pgx.RowToStructByPos[priceJSON]); err != nil {
		return nil, err
	}
	return &s, nil
}

func (a *App) apiSKUGet(c *fiber.Ctx) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var s *skuJSON
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		s, err = a.loadSKU(r, conn, id)
		return err
	}); err != nil {
		return fmt.Errorf("sku: %w", err)
	}
	if s == nil {
		return errNotFound
	}
	return c.JSON(s)
}

// apiSKUCreate adds a SKU with its first price, linked to product_id when
// given.
func (a *App) apiSKUCreate(c *fiber.Ctx) error {
	var in skuIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.createSKU(a.r(c), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (a *App) createSKU(r *req, in skuIn) (*skuJSON, error) {
	if err := in.check(true); err != nil {
		return nil, err
	}
	var out *skuJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		inv, err := inventoryID(r, tx, *in.Inventory)
		if err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(r.ctx, `INSERT INTO sku (sku_type_id, sku_inventory_id, color, size, description)
VALUES ((SELECT min(id) FROM sku_type), $1, $2, $3, $4) RETURNING id`, inv, *in.Color, *in.Size, *in.Description).Scan(&id); err != nil {
			return fmt.Errorf("create sku: %w", err)
		}
		if _, err := tx.Exec(r.ctx, `INSERT INTO sku_price (sku_id, price) VALUES ($1, $2)`, id, in.Price.Decimal); err != nil {
			return fmt.Errorf("create sku price: %w", err)
		}
		if in.ProductID != nil {
			if err := linkSKU(r, tx, *in.ProductID, id, "product_id"); err != nil {
				return err
			}
		}
		if out, err = a.loadSKU(r, tx, id); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "sku.created", TargetType: "sku", TargetID: id, After: out})
	})
	return out, err
}

// linkSKU makes the SKU one of the product's (a SKU belongs to one product).
func linkSKU(r *req, tx pgx.Tx, productID, skuID int64, field string) error {
	var ok bool
	if err := tx.QueryRow(r.ctx, `SELECT EXISTS (SELECT 1 FROM product WHERE id = $1)`, productID).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return invalid(field, "no product has this id")
	}
	_, err := tx.Exec(r.ctx, `INSERT INTO product_sku (product_id, sku_id) VALUES ($1, $2)
ON CONFLICT (sku_id) DO UPDATE SET product_id = EXCLUDED.product_id`, productID, skuID)
	return err
}

func (a *App) apiSKUUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in skuIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.updateSKU(a.r(c), id, in)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// updateSKU changes a SKU's fields or product; its price only ever gets a
// new row (addPrice).
func (a *App) updateSKU(r *req, id int64, in skuIn) (*skuJSON, error) {
	if in.Price != nil {
		return nil, invalid("price", "a price is never changed: add one with POST /skus/{id}/prices")
	}
	if err := in.check(false); err != nil {
		return nil, err
	}
	var out *skuJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		before, err := a.loadSKU(r, tx, id)
		if err != nil {
			return err
		}
		if before == nil {
			return errNotFound
		}
		var inv *int64
		if in.Inventory != nil {
			v, err := inventoryID(r, tx, *in.Inventory)
			if err != nil {
				return err
			}
			inv = &v
		}
		if _, err := tx.Exec(r.ctx, `UPDATE sku SET color = coalesce($2, color), size = coalesce($3, size),
description = coalesce($4, description), sku_inventory_id = coalesce($5, sku_inventory_id) WHERE id = $1`,
			id, in.Color, in.Size, in.Description, inv); err != nil {
			return fmt.Errorf("update sku: %w", err)
		}
		if in.ProductID != nil {
			if err := linkSKU(r, tx, *in.ProductID, id, "product_id"); err != nil {
				return err
			}
		}
		if out, err = a.loadSKU(r, tx, id); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "sku.updated", TargetType: "sku", TargetID: id, Before: before, After: out})
	})
	return out, err
}

// apiSKUPrice adds a price: the SKU's price from now on.
func (a *App) apiSKUPrice(c *fiber.Ctx) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in struct {
		Price *amountIn `json:"price"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.addPrice(r, id, in.Price)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (a *App) addPrice(r *req, id int64, in *amountIn) (*skuJSON, error) {
	price, err := money("price", in)
	if err != nil {
		return nil, err
	}
	var out *skuJSON
	err = a.tx(r, func(tx pgx.Tx) error {
		before, err := a.loadSKU(r, tx, id)
		if err != nil {
			return err
		}
		if before == nil {
			return errNotFound
		}
		// clock_timestamp: a later price in the same transaction still
		// sorts after; greatest: never before the current one.
		if _, err := tx.Exec(r.ctx, `INSERT INTO sku_price (sku_id, price, created_date_time)
VALUES ($1, $2, greatest(clock_timestamp(), (SELECT max(created_date_time) FROM sku_price WHERE sku_id = $1)))`, id, price); err != nil {
			return fmt.Errorf("add price: %w", err)
		}
		if out, err = a.loadSKU(r, tx, id); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "sku.price_added", TargetType: "sku", TargetID: id,
			Before: map[string]any{"price": before.Price}, After: map[string]any{"price": price}})
	})
	return out, err
}

// apiProductSKULink links (PUT) or unlinks (DELETE) a SKU and a product.
func (a *App) apiProductSKULink(c *fiber.Ctx) error {
	r := a.r(c)
	pid, err := pathID(c)
	if err != nil {
		return err
	}
	sid, err := paramID(c, "sku")
	if err != nil {
		return err
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(r.ctx, `SELECT EXISTS (SELECT 1 FROM sku WHERE id = $1) AND EXISTS (SELECT 1 FROM product WHERE id = $2)`, sid, pid).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return errNotFound
		}
		action := "product.sku_linked"
		if c.Method() == fiber.MethodDelete {
			action = "product.sku_unlinked"
			tag, err := tx.Exec(r.ctx, `DELETE FROM product_sku WHERE product_id = $1 AND sku_id = $2`, pid, sid)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errNotFound
			}
		} else if err := linkSKU(r, tx, pid, sid, "id"); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: action, TargetType: "product", TargetID: pid, After: map[string]any{"sku_id": sid}})
	})
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func paramID(c *fiber.Ctx, name string) (int64, error) {
	id, err := c.ParamsInt(name)
	if err != nil || id < 1 {
		return 0, errNotFound
	}
	return int64(id), nil
}
