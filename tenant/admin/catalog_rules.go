package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
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
	r := a.r(c)
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in struct {
		Active *bool     `json:"active"`
		Cost   *amountIn `json:"shipping_cost"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	if in.Active == nil && in.Cost == nil {
		return required("active")
	}
	var cost *decimal.Decimal
	if in.Cost != nil {
		v, err := money("shipping_cost", in.Cost)
		if err != nil {
			return err
		}
		cost = &v
	}
	var out shippingJSON
	err = a.tx(r, func(tx pgx.Tx) error {
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
		return err
	}
	return c.JSON(out)
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
	var out []discountJSON
	err = a.conn(r, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(r.ctx, discountSelect+` WHERE ($1 = 0 OR dc.id > $1) ORDER BY dc.id LIMIT $2`, p.after, p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[discountJSON])
		return err
	})
	if err != nil {
		return fmt.Errorf("discount codes: %w", err)
	}
	out, next, _ := pageTail(out, p, func(x discountJSON) int64 { return x.ID })
	return c.JSON(listJSON(out, next))
}

// apiDiscountCreate adds a code under the seed era's rules (docs/api.md
// §11): a unique code, a discount type by its action, an end not before the
// start, amounts of at least 0, a percentage of at most 100.
func (a *App) apiDiscountCreate(c *fiber.Ctx) error {
	r := a.r(c)
	var in struct {
		Code         string     `json:"code"`
		Description  string     `json:"description"`
		Start        *time.Time `json:"start_date_time"`
		End          *time.Time `json:"end_date_time"`
		Combinable   bool       `json:"combinable"`
		Amount       *amountIn  `json:"discount_amount"`
		OrderMinimum *amountIn  `json:"order_minimum"`
		Type         string     `json:"discount_type"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	var err error
	if in.Code, err = text("code", in.Code, true, 100); err != nil {
		return err
	}
	if in.Description, err = text("description", in.Description, true, 500); err != nil {
		return err
	}
	if in.Start == nil {
		return required("start_date_time")
	}
	if in.End == nil {
		return required("end_date_time")
	}
	if in.End.Before(*in.Start) {
		return invalid("end_date_time", "end_date_time must not be before start_date_time")
	}
	amount, err := money("discount_amount", in.Amount)
	if err != nil {
		return err
	}
	minimum := decimal.Zero
	if in.OrderMinimum != nil {
		if minimum, err = money("order_minimum", in.OrderMinimum); err != nil {
			return err
		}
	}
	if in.Type == "" {
		return required("discount_type")
	}
	if in.Type == "percent-off" && amount.GreaterThan(decimal.NewFromInt(100)) {
		return invalid("discount_amount", "a percent-off amount is at most 100")
	}
	var out discountJSON
	err = a.tx(r, func(tx pgx.Tx) error {
		var typeID int64
		err := tx.QueryRow(r.ctx, `SELECT id FROM discount_type WHERE action = $1 ORDER BY id LIMIT 1`, in.Type).Scan(&typeID)
		if errors.Is(err, pgx.ErrNoRows) {
			return invalid("discount_type", "discount_type must be a discount type's action (percent-off, dollar-amt-off, free-usps-ground-shipping, free-digital-months)")
		}
		if err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(r.ctx, `INSERT INTO discount_code (code, description, start_date_time, end_date_time, combinable, discount_amount, order_minimum, discount_type_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO NOTHING RETURNING id`,
			in.Code, in.Description, *in.Start, *in.End, in.Combinable, amount, minimum, typeID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return &apiError{Status: fiber.StatusConflict, Code: "code-taken", Detail: "another discount code has this code", Field: "code"}
		}
		if err != nil {
			return fmt.Errorf("create discount code: %w", err)
		}
		rows, err := tx.Query(r.ctx, discountSelect+` WHERE dc.id = $1`, id)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[discountJSON]); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "discount_code.created", TargetType: "discount_code", TargetID: id, After: out})
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

type termsJSON struct {
	ID          int64     `json:"id"`
	Version     int       `json:"version"`
	Note        string    `json:"version_note"`
	PublishedAt time.Time `json:"publication_date_time"`
}

func (a *App) apiTermsList(c *fiber.Ctx) error {
	r := a.r(c)
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
		return fmt.Errorf("terms: %w", err)
	}
	return c.JSON(listJSON(out, ""))
}

// apiTermsCreate publishes a new terms-of-use version: the next number,
// published now unless a time is given.
func (a *App) apiTermsCreate(c *fiber.Ctx) error {
	r := a.r(c)
	var in struct {
		Note        string     `json:"version_note"`
		PublishedAt *time.Time `json:"publication_date_time"`
	}
	if err := body(c, &in); err != nil {
		return err
	}
	var err error
	if in.Note, err = text("version_note", in.Note, true, 1000); err != nil {
		return err
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
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}
