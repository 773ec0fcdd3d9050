package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// Shipping methods, discount codes and terms-of-use versions.

type shippingJSON struct {
	ID          int64           `json:"id"`
	Identifier  string          `json:"identifier"`
	Carrier     string          `json:"carrier"`
	Cost        decimal.Decimal `json:"shipping_cost"`
	TrackingURL string          `json:"tracking_code_base_url"`
	Active      bool            `json:"active"`
}

const shippingSelect = `SELECT id, identifier, carrier, shipping_cost, tracking_code_base_url, active FROM shipping_method`

func shippingMethods(r *req, q querier, where string, args ...any) ([]shippingJSON, error) {
	rows, err := q.Query(r.ctx, shippingSelect+" WHERE "+where+" ORDER BY id", args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[shippingJSON])
}

func (a *App) apiShippingList(c *fiber.Ctx) error {
	r := a.r(c)
	var out []shippingJSON
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		var err error
		out, err = shippingMethods(r, conn, "true")
		return err
	})
	if err != nil {
		return fmt.Errorf("shipping methods: %w", err)
	}
	return c.JSON(listJSON(out, ""))
}

// apiShippingUpdate (de)activates a method or changes its cost.
func (a *App) apiShippingUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in shippingIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.updateShipping(a.r(c), id, in)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

type shippingIn struct {
	Active *bool     `json:"active"`
	Cost   *amountIn `json:"shipping_cost"`
}

func (a *App) updateShipping(r *req, id int64, in shippingIn) (*shippingJSON, error) {
	if in.Active == nil && in.Cost == nil {
		return nil, required("active")
	}
	var cost *decimal.Decimal
	if in.Cost != nil {
		v, err := money("shipping_cost", in.Cost)
		if err != nil {
			return nil, err
		}
		cost = &v
	}
	var out shippingJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `SELECT 1 FROM shipping_method WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		before, err := shippingMethods(r, tx, "id = $1", id)
		if err != nil {
			return err
		}
		if len(before) == 0 {
			return errNotFound
		}
		if _, err := tx.Exec(r.ctx, `UPDATE shipping_method SET active = coalesce($2::boolean, active), shipping_cost = coalesce($3::numeric, shipping_cost) WHERE id = $1`,
			id, in.Active, cost); err != nil {
			return fmt.Errorf("update shipping method: %w", err)
		}
		after, err := shippingMethods(r, tx, "id = $1", id)
		if err != nil {
			return err
		}
		out = after[0]
		return r.audit(tx, auditEntry{Action: "shipping_method.updated", TargetType: "shipping_method", TargetID: id, Before: before[0], After: out})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

type discountJSON struct {
	ID           int64           `json:"id"`
	Code         string          `json:"code"`
	Description  string          `json:"description"`
	Start        time.Time       `json:"start_date_time"`
	End          time.Time       `json:"end_date_time"`
	Combinable   bool            `json:"combinable"`
	Amount       decimal.Decimal `json:"discount_amount"`
	OrderMinimum decimal.Decimal `json:"order_minimum"`
	Type         string          `json:"discount_type"`
}

const discountSelect = `SELECT dc.id, dc.code, dc.description, dc.start_date_time, dc.end_date_time, dc.combinable, dc.discount_amount,
dc.order_minimum, dt.action FROM discount_code dc JOIN discount_type dt ON dt.id = dc.discount_type_id`

func (a *App) apiDiscountList(c *fiber.Ctx) error {
	r := a.r(c)
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	out, next, err := a.listDiscounts(r, p)
	if err != nil {
		return err
	}
	return c.JSON(listJSON(out, next))
}

// listDiscounts is a page of discount codes in id order and the next page's
// cursor.
func (a *App) listDiscounts(r *req, p page) ([]discountJSON, string, error) {
	var out []discountJSON
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(r.ctx, discountSelect+` WHERE ($1 = 0 OR dc.id > $1) ORDER BY dc.id LIMIT $2`, p.after, p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[discountJSON])
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("discount codes: %w", err)
	}
	out, next, _ := pageTail(out, p, func(x discountJSON) int64 { return x.ID })
	return out, next, nil
}

// discountIn is a discount code in a request: every field when creating,
// any of them when changing one.
type discountIn struct {
	Code         *string    `json:"code"`
	Description  *string    `json:"description"`
	Start        *time.Time `json:"start_date_time"`
	End          *time.Time `json:"end_date_time"`
	Combinable   *bool      `json:"combinable"`
	Amount       *amountIn  `json:"discount_amount"`
	OrderMinimum *amountIn  `json:"order_minimum"`
	Type         *string    `json:"discount_type"`
}

// apply puts in's fields over base (nil when creating: the required fields
// must then be there) and checks the result under the seed era's rules
// (docs/api.md §11): a code and a description, an end not before the
// start, amounts of at least 0 in whole cents, a percentage of at most 100.
// The discount type's action is checked against the table by the caller.
func (in discountIn) apply(base *discountJSON) (discountJSON, error) {
	var out discountJSON
	if base != nil {
		out = *base
	}
	var err error
	creating := base == nil
	textField := func(name string, v *string, dst *string, max int) error {
		if v == nil {
			if creating {
				return required(name)
			}
			return nil
		}
		*dst, err = text(name, *v, true, max)
		return err
	}
	if err := textField("code", in.Code, &out.Code, 100); err != nil {
		return out, err
	}
	if err := textField("description", in.Description, &out.Description, 500); err != nil {
		return out, err
	}
	if err := textField("discount_type", in.Type, &out.Type, 100); err != nil {
		return out, err
	}
	for _, t := range []struct {
		name string
		v    *time.Time
		dst  *time.Time
	}{{"start_date_time", in.Start, &out.Start}, {"end_date_time", in.End, &out.End}} {
		switch {
		case t.v != nil:
			*t.dst = *t.v
		case creating:
			return out, required(t.name)
		}
	}
	if out.End.Before(out.Start) {
		return out, invalid("end_date_time", "end_date_time must not be before start_date_time")
	}
	if in.Amount != nil || creating {
		if out.Amount, err = money("discount_amount", in.Amount); err != nil {
			return out, err
		}
	}
	if in.OrderMinimum != nil {
		if out.OrderMinimum, err = money("order_minimum", in.OrderMinimum); err != nil {
			return out, err
		}
	}
	if in.Combinable != nil {
		out.Combinable = *in.Combinable
	}
	if out.Type == "percent-off" && out.Amount.GreaterThan(decimal.NewFromInt(100)) {
		return out, invalid("discount_amount", "a percent-off amount is at most 100")
	}
	return out, nil
}

// apiDiscountCreate adds a code.
func (a *App) apiDiscountCreate(c *fiber.Ctx) error {
	var in discountIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.saveDiscount(a.r(c), 0, in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

// apiDiscountUpdate changes a code: any field, under the same rules. Carts
// holding it see the change at their next total; orders keep what they
// were charged. Ending a code is setting its end_date_time.
func (a *App) apiDiscountUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in discountIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.saveDiscount(a.r(c), id, in)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (a *App) apiDiscountGet(c *fiber.Ctx) error {
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var out *discountJSON
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		out, err = loadDiscount(r, conn, id, false)
		return err
	}); err != nil {
		return fmt.Errorf("discount code: %w", err)
	}
	if out == nil {
		return errNotFound
	}
	return c.JSON(out)
}

// loadDiscount reads a code (locked for update when lock); nil when none.
func loadDiscount(r *req, q querier, id int64, lock bool) (*discountJSON, error) {
	sql := discountSelect + ` WHERE dc.id = $1`
	if lock {
		sql += ` FOR UPDATE OF dc`
	}
	rows, err := q.Query(r.ctx, sql, id)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[discountJSON])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return &out, err
}

// saveDiscount creates (id 0) or changes a code in one transaction with its
// audit row.
func (a *App) saveDiscount(r *req, id int64, in discountIn) (*discountJSON, error) {
	var out *discountJSON
	err := a.tx(r, func(tx pgx.Tx) error {
		var before *discountJSON
		if id != 0 {
			var err error
			if before, err = loadDiscount(r, tx, id, true); err != nil {
				return err
			}
			if before == nil {
				return errNotFound
			}
		}
		v, err := in.apply(before)
		if err != nil {
			return err
		}
		var typeID int64
		err = tx.QueryRow(r.ctx, `SELECT id FROM discount_type WHERE action = $1 ORDER BY id LIMIT 1`, v.Type).Scan(&typeID)
		if errors.Is(err, pgx.ErrNoRows) {
			return invalid("discount_type", "discount_type must be a discount type's action (percent-off, dollar-amt-off, free-usps-ground-shipping, free-digital-months)")
		}
		if err != nil {
			return err
		}
		if id == 0 {
			err = tx.QueryRow(r.ctx, `INSERT INTO discount_code (code, description, start_date_time, end_date_time, combinable, discount_amount, order_minimum, discount_type_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO NOTHING RETURNING id`,
				v.Code, v.Description, v.Start, v.End, v.Combinable, v.Amount, v.OrderMinimum, typeID).Scan(&id)
		} else {
			err = tx.QueryRow(r.ctx, `UPDATE discount_code SET code = $2, description = $3, start_date_time = $4, end_date_time = $5,
combinable = $6, discount_amount = $7, order_minimum = $8, discount_type_id = $9
WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM discount_code o WHERE o.code = $2 AND o.id <> $1) RETURNING id`,
				id, v.Code, v.Description, v.Start, v.End, v.Combinable, v.Amount, v.OrderMinimum, typeID).Scan(&id)
		}
		var pgErr *pgconn.PgError
		if errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pgErr) && pgErr.Code == "23505") {
			return &apiError{Status: fiber.StatusConflict, Code: "code-taken", Detail: "another discount code has this code", Field: "code"}
		}
		if err != nil {
			return fmt.Errorf("save discount code: %w", err)
		}
		if out, err = loadDiscount(r, tx, id, false); err != nil {
			return err
		}
		action := "discount_code.updated"
		if before == nil {
			action = "discount_code.created"
		}
		return r.audit(tx, auditEntry{Action: action, TargetType: "discount_code", TargetID: id, Before: nilIfNone(before), After: out})
	})
	return out, err
}

type termsJSON struct {
	ID          int64     `json:"id"`
	Version     int       `json:"version"`
	Note        string    `json:"version_note"`
	PublishedAt time.Time `json:"publication_date_time"`
}

func (a *App) apiTermsList(c *fiber.Ctx) error {
	out, err := a.listTerms(a.r(c))
	if err != nil {
		return err
	}
	return c.JSON(listJSON(out, ""))
}

// listTerms is every terms-of-use version, newest first.
func (a *App) listTerms(r *req) ([]termsJSON, error) {
	var out []termsJSON
	err := a.conn(r, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(r.ctx, `SELECT id, version, coalesce(version_note, ''), publication_date_time FROM terms_of_use_version ORDER BY version DESC, id DESC`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[termsJSON])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("terms: %w", err)
	}
	return out, nil
}

// apiTermsCreate publishes a new terms-of-use version: the next number,
// published now unless a time is given.
func (a *App) apiTermsCreate(c *fiber.Ctx) error {
	var in termsIn
	if err := body(c, &in); err != nil {
		return err
	}
	out, err := a.publishTerms(a.r(c), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

type termsIn struct {
	Note        string     `json:"version_note"`
	PublishedAt *time.Time `json:"publication_date_time"`
}

// publishTerms adds the next terms-of-use version; members are asked to
// agree to it at their next sign-in.
func (a *App) publishTerms(r *req, in termsIn) (*termsJSON, error) {
	var err error
	if in.Note, err = text("version_note", in.Note, true, 1000); err != nil {
		return nil, err
	}
	at := a.now()
	if in.PublishedAt != nil {
		at = *in.PublishedAt
	}
	var out termsJSON
	err = a.tx(r, func(tx pgx.Tx) error {
		// One publisher at a time draws the next number.
		if _, err := tx.Exec(r.ctx, `LOCK TABLE terms_of_use_version IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		if err := tx.QueryRow(r.ctx, `INSERT INTO terms_of_use_version (version, version_note, publication_date_time)
SELECT coalesce(max(version), 0) + 1, $1, $2 FROM terms_of_use_version RETURNING id, version, version_note, publication_date_time`,
			in.Note, at).Scan(&out.ID, &out.Version, &out.Note, &out.PublishedAt); err != nil {
			return fmt.Errorf("publish terms: %w", err)
		}
		return r.audit(tx, auditEntry{Action: "terms.published", TargetType: "terms_of_use_version", TargetID: out.ID, After: out})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
