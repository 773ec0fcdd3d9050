package admin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TokenPrefix starts every staff API token, so a leaked one is recognisable.
const TokenPrefix = "swa_staff_"

// byToken resolves a bearer token to its staff member (active, token not
// revoked) and notes its use; nil when it is nobody's.
func (a *App) byToken(r *req, tok string) (*principal, error) {
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) > 100 {
		return nil, nil
	}
	var p *principal
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var id, staffID int64
		err := c.QueryRow(r.ctx, `UPDATE staff_token SET last_used_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL
RETURNING id, staff_id`, tokenDigest(tok), a.now()).Scan(&id, &staffID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		s, err := staffByID(r.ctx, c, staffID)
		if err != nil || s == nil || !s.Active {
			return err
		}
		p = &principal{staff: s, tokenID: id}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("token lookup: %w", err)
	}
	return p, nil
}

type tokenJSON struct {
	ID         int64      `json:"id"`
	StaffID    int64      `json:"staff_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	// Token is the secret itself, in the answer that creates it only.
	Token string `json:"token,omitempty"`
}

// createToken makes an API token for the signed-in staff member; the token
// is in the answer and nowhere else.
func (a *App) createToken(r *req, name string) (*tokenJSON, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, required("name")
	}
	if utf8.RuneCountInString(name) > 100 {
		return nil, invalid("name", "name is longer than 100 characters")
	}
	tok, digest := newToken(TokenPrefix)
	out := &tokenJSON{StaffID: r.who.staff.ID, Name: name, Token: tok}
	err := a.tx(r, func(tx pgx.Tx) error {
		if err := tx.QueryRow(r.ctx, `INSERT INTO staff_token (staff_id, name, token_hash) VALUES ($1, $2, $3) RETURNING id, created_at`,
			r.who.staff.ID, name, digest).Scan(&out.ID, &out.CreatedAt); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "token.created", TargetType: "staff_token", TargetID: out.ID,
			After: map[string]any{"name": name, "staff_id": r.who.staff.ID}})
	})
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	return out, nil
}

// listTokens lists the staff member's own tokens (an owner's list shows
// everyone's).
func (a *App) listTokens(r *req, p page) ([]tokenJSON, string, error) {
	var out []tokenJSON
	all := r.who.staff.Role == RoleOwner
	err := a.conn(r, func(c *pgxpool.Conn) error {
		rows, err := c.Query(r.ctx, `SELECT id, staff_id, name, created_at, last_used_at, revoked_at FROM staff_token
WHERE ($1 OR staff_id = $2) AND id > $3 ORDER BY id LIMIT $4`, all, r.who.staff.ID, p.after, p.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (tokenJSON, error) {
			var t tokenJSON
			err := row.Scan(&t.ID, &t.StaffID, &t.Name, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt)
			return t, err
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list tokens: %w", err)
	}
	return pageTail(out, p, func(x tokenJSON) int64 { return x.ID })
}

// revokeToken revokes one of the staff member's tokens (an owner: anyone's).
func (a *App) revokeToken(r *req, id int64) error {
	all := r.who.staff.Role == RoleOwner
	return a.tx(r, func(tx pgx.Tx) error {
		var name string
		var staffID int64
		err := tx.QueryRow(r.ctx, `UPDATE staff_token SET revoked_at = $4 WHERE id = $1 AND ($2 OR staff_id = $3) AND revoked_at IS NULL
RETURNING name, staff_id`, id, all, r.who.staff.ID, a.now()).Scan(&name, &staffID)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "token.revoked", TargetType: "staff_token", TargetID: id,
			Before: map[string]any{"name": name, "staff_id": staffID, "revoked": false}, After: map[string]any{"revoked": true}})
	})
}

func pathID(c *fiber.Ctx) (int64, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errNotFound
	}
	return id, nil
}

func (a *App) apiTokenList(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	items, next, err := a.listTokens(a.r(c), p)
	if err != nil {
		return err
	}
	return c.JSON(listJSON(items, next))
}

func (a *App) apiTokenCreate(c *fiber.Ctx) error {
	var b struct {
		Name string `json:"name"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	t, err := a.createToken(a.r(c), b.Name)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(t)
}

func (a *App) apiTokenRevoke(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := a.revokeToken(a.r(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
