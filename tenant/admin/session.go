package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
)

// CookieName is the staff session cookie. It is scoped to /admin, so the
// member API never sees it, and the member's sessionid means nothing here.
const CookieName = "swa_staff"

// Stages of a session: signed in, or waiting for the second factor.
const (
	stageFull = ""
	stageTOTP = "totp"
)

// staffSession is what Redis holds for one session, under the digest of
// its id (a key listing leaks no cookie).
type staffSession struct {
	StaffID  int64  `json:"s"`
	AuthHash string `json:"h"` // ends the session when the password changes
	CSRF     string `json:"c"`
	Stage    string `json:"st,omitempty"`
	Expires  int64  `json:"x"` // absolute expiry, unix seconds
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *App) sessKey(tenantID int64, id string) string {
	sum := sha256.Sum256([]byte(id))
	return a.prefix + strconv.FormatInt(tenantID, 10) + ":staffsess:" + hex.EncodeToString(sum[:16])
}

func (a *App) staffSetKey(tenantID, staffID int64) string {
	return a.prefix + strconv.FormatInt(tenantID, 10) + ":staffsess-of:" + strconv.FormatInt(staffID, 10)
}

// startSession stores a new session for s (always a new id: no fixation)
// and sets the cookie. The second-factor stage lives totpStageTTL only.
func (a *App) startSession(r *req, s *staffRow, stage string) (*staffSession, error) {
	now := a.now()
	ttl, abs := a.idle, now.Add(a.absolute)
	if stage == stageTOTP {
		ttl, abs = totpStageTTL, now.Add(totpStageTTL)
	}
	sess := &staffSession{StaffID: s.ID, AuthHash: sessions.AuthHash(r.key, s.PasswordHash), CSRF: randomID(),
		Stage: stage, Expires: abs.Unix()}
	raw, err := json.Marshal(sess)
	if err != nil {
		return nil, err
	}
	id := randomID()
	key := a.sessKey(r.tenant.ID, id)
	set := a.staffSetKey(r.tenant.ID, s.ID)
	_, err = a.rdb.TxPipelined(r.ctx, func(p redis.Pipeliner) error {
		p.Set(r.ctx, key, raw, ttl)
		p.SAdd(r.ctx, set, key)
		p.Expire(r.ctx, set, a.absolute)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start staff session: %w", err)
	}
	if r.who != nil && r.who.sessID != "" {
		a.rdb.Del(r.ctx, a.sessKey(r.tenant.ID, r.who.sessID))
	}
	r.c.Cookie(&fiber.Cookie{Name: CookieName, Value: id, Path: "/admin", HTTPOnly: true,
		Secure: server.IsHTTPS(r.c), SameSite: fiber.CookieSameSiteStrictMode, SessionOnly: true})
	return sess, nil
}

// loadSession returns the session named by the cookie, nil when there is
// none or it expired; an idle one is renewed for another idle period.
func (a *App) loadSession(ctx context.Context, tenantID int64, id string) (*staffSession, error) {
	if id == "" || len(id) > 64 {
		return nil, nil
	}
	key := a.sessKey(tenantID, id)
	raw, err := a.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load staff session: %w", err)
	}
	var s staffSession
	if json.Unmarshal(raw, &s) != nil {
		return nil, nil
	}
	now := a.now()
	if now.Unix() >= s.Expires {
		a.rdb.Del(ctx, key)
		return nil, nil
	}
	left := time.Unix(s.Expires, 0).Sub(now)
	if s.Stage == stageFull {
		if err := a.rdb.PExpire(ctx, key, min(a.idle, left)).Err(); err != nil {
			return nil, fmt.Errorf("renew staff session: %w", err)
		}
	}
	return &s, nil
}

// endSession deletes the request's session and expires its cookie.
func (a *App) endSession(r *req) error {
	if r.who != nil && r.who.sessID != "" {
		if err := a.rdb.Del(r.ctx, a.sessKey(r.tenant.ID, r.who.sessID)).Err(); err != nil {
			return fmt.Errorf("end staff session: %w", err)
		}
	}
	r.c.Cookie(&fiber.Cookie{Name: CookieName, Value: "", Path: "/admin", HTTPOnly: true,
		Secure: server.IsHTTPS(r.c), SameSite: fiber.CookieSameSiteStrictMode, Expires: time.Unix(0, 0).UTC()})
	return nil
}

// endAllSessions ends every session of a staff member (password changed or
// reset, deactivated). Sessions are also refused on their own when the
// password hash or activity no longer matches; this makes it immediate.
func (a *App) endAllSessions(ctx context.Context, tenantID, staffID int64) error {
	set := a.staffSetKey(tenantID, staffID)
	keys, err := a.rdb.SMembers(ctx, set).Result()
	if err != nil {
		return fmt.Errorf("end staff sessions: %w", err)
	}
	if err := a.rdb.Del(ctx, append(keys, set)...).Err(); err != nil {
		return fmt.Errorf("end staff sessions: %w", err)
	}
	return nil
}

func csrfMatches(sess *staffSession, sent string) bool {
	return sent != "" && subtle.ConstantTimeCompare([]byte(sess.CSRF), []byte(sent)) == 1
}
