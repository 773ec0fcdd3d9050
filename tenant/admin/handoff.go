package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// A handoff is a single-use, short-lived link that signs a staff member into
// the back office without their password: the control plane issues one to a
// founder whose shop it has just created, and their browser follows it from
// the platform site to /admin/handoff on the new shop's host. Redis holds
// only the digest of the token, under the tenant's prefix, for MaxHandoffTTL
// at most; the first use deletes it.

// MaxHandoffTTL caps how long a handoff link stays valid.
const MaxHandoffTTL = 5 * time.Minute

// HandoffPath is where a handoff link points on the tenant's host; the
// token goes in the query parameter "token".
const HandoffPath = "/admin/handoff"

func handoffKey(prefix string, tenantID int64, token string) string {
	sum := sha256.Sum256([]byte(token))
	return prefix + strconv.FormatInt(tenantID, 10) + ":staffhandoff:" + hex.EncodeToString(sum[:16])
}

// IssueHandoff stores a handoff for staff member staffID of the tenant and
// returns its token. prefix is the Redis prefix the data plane's back office
// uses (SWA_REDIS_PREFIX); ttl is capped at MaxHandoffTTL.
func IssueHandoff(ctx context.Context, rdb redis.UniversalClient, prefix string, tenantID, staffID int64, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxHandoffTTL {
		ttl = MaxHandoffTTL
	}
	tok := randomID()
	if err := rdb.Set(ctx, handoffKey(prefix, tenantID, tok), strconv.FormatInt(staffID, 10), ttl).Err(); err != nil {
		return "", fmt.Errorf("issue handoff: %w", err)
	}
	return tok, nil
}

// OwnerID is the id of the staff member with the address, if any.
func OwnerID(ctx context.Context, tx pgx.Tx, email string) (int64, error) {
	s, err := staffByEmail(ctx, tx, email)
	if err != nil || s == nil {
		return 0, err
	}
	return s.ID, nil
}

// CreateOwnerHash is CreateOwner for a password already hashed with the
// back office's hasher (a founder's choice, kept only as its hash since
// sign-up). It reports whether it created the owner; one with the address
// already there is left as it is.
func CreateOwnerHash(ctx context.Context, tx pgx.Tx, email, name, passwordHash, actor string) (bool, error) {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO staff (email, name, password_hash, role) VALUES ($1, $2, $3, 'owner')
ON CONFLICT (lower(email)) DO NOTHING RETURNING id`, email, name, passwordHash).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create owner: %w", err)
	}
	err = writeAudit(ctx, tx, auditEntry{Actor: actor, Action: "staff.created", TargetType: "staff", TargetID: id,
		After: map[string]any{"email": email, "name": name, "role": RoleOwner}})
	return err == nil, err
}

// pageHandoff uses a handoff token: a session for its staff member (at the
// second-factor stage if they have one), then a page that moves on to the
// dashboard. A used,
// expired or unknown token leads to the sign-in page.
func (a *App) pageHandoff(c *fiber.Ctx) error {
	r := a.r(c)
	tok := c.Query("token")
	if tok == "" || len(tok) > 64 {
		return c.Redirect("/admin/sign-in", fiber.StatusSeeOther)
	}
	raw, err := a.rdb.GetDel(r.ctx, handoffKey(a.prefix, r.tenant.ID, tok)).Result()
	if errors.Is(err, redis.Nil) {
		return c.Redirect("/admin/sign-in", fiber.StatusSeeOther)
	}
	if err != nil {
		return fmt.Errorf("use handoff: %w", err)
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return c.Redirect("/admin/sign-in", fiber.StatusSeeOther)
	}
	var s *staffRow
	if err := a.conn(r, func(conn *pgxpool.Conn) error {
		s, err = staffByID(r.ctx, conn, id)
		return err
	}); err != nil {
		return err
	}
	if s == nil || !s.Active {
		return c.Redirect("/admin/sign-in", fiber.StatusSeeOther)
	}
	stage, next := stageFull, "/admin/"
	if s.TOTPEnabled {
		stage, next = stageTOTP, "/admin/sign-in/totp"
	}
	if _, err := a.startSession(r, s, stage); err != nil {
		return err
	}
	// Not a redirect: the link is followed from the platform site, another
	// site to the browser, and a redirect chain that began there does not
	// carry the SameSite=Strict session cookie. A page of the shop's own
	// that moves on by itself does.
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	return c.SendString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signing you in</title>` +
		`<meta http-equiv="refresh" content="0;url=` + next + `"><link rel="stylesheet" href="/admin/static/admin.css"></head>` +
		`<body><main><p>Signing you in… <a href="` + next + `">Continue to the back office</a></p></main></body></html>`)
}
