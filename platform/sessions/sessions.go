// Package sessions keeps server-side sessions in Redis, referenced by the
// `sessionid` cookie (docs/api.md §1.5, §1.6).
//
// Keys are tenant-scoped: a session lives at {prefix}{tenantID}:sess:{id}, so
// a session id presented on another tenant's host is simply unknown there. A
// per-user set {prefix}{tenantID}:user:{userID}:sessions lists the ids of a
// user's sessions, so a password change can end all of them.
//
// Loading is lazy: the middleware only reads the cookie; Redis is asked the
// first time a handler calls Get or Load, and written after the handler only
// when the session was modified. A client-chosen id is never adopted: an
// unknown id is replaced by a fresh one when the session is first saved. An
// existing session is only rewritten while it still exists, so a request in
// flight cannot revive a session that a logout or password change just ended.
package sessions

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/platform/server"
)

// CookieName is the name of the session cookie.
const CookieName = "sessionid"

// DefaultTTL is the server-side lifetime of a session and the Max-Age of a
// persistent session cookie (Django's SESSION_COOKIE_AGE).
const DefaultTTL = 14 * 24 * time.Hour

// idLength and idAlphabet follow Django's session keys: 32 chars of
// [a-z0-9] carry about 165 bits.
const (
	idLength   = 32
	idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
)

const localsKey = "swa.session"

// Options configures the session store.
type Options struct {
	// Redis holds the sessions.
	Redis redis.UniversalClient
	// Prefix starts every key (e.g. "swa:"); the tenant id follows it.
	Prefix string
	// TTL is the server-side lifetime, renewed on each save (default 14 days).
	TTL time.Duration
	// Timeout bounds each Redis round trip (default 500ms).
	Timeout time.Duration
	Log     *slog.Logger
}

// Store reads and writes sessions.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
}

// New returns a store over opts.Redis.
func New(opts Options) *Store {
	s := &Store{rdb: opts.Redis, prefix: opts.Prefix, ttl: opts.TTL, timeout: opts.Timeout, log: opts.Log}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.timeout <= 0 {
		s.timeout = 500 * time.Millisecond
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Middleware is New(opts).Handler().
func Middleware(opts Options) fiber.Handler { return New(opts).Handler() }

// Session is one visitor's server-side state. Change the fields and the
// middleware saves the session after the handler; Save writes it at once.
type Session struct {
	// UserID is the signed-in account, 0 when anonymous.
	UserID int64
	// AuthHash is a hash of the account's password hash at login; a session
	// whose AuthHash no longer matches the account is treated as signed out.
	AuthHash string
	// Values holds the rest (small strings only).
	Values map[string]string

	store    *Store
	c        *fiber.Ctx
	tenantID int64

	cookieID   string // id presented by the client (syntactically valid), "" if none
	id         string // id of the stored record, "" until known or created
	loaded     bool
	loadErr    error
	persistent bool
	dirty      bool // Regenerate, SetPersistent or an explicit change of id
	fresh      bool // id minted in this request, not yet stored
	destroyed  bool
	saved      record // what Redis holds (for modification checks)
}

// record is the stored JSON form.
type record struct {
	UserID     int64             `json:"u,omitempty"`
	AuthHash   string            `json:"h,omitempty"`
	Values     map[string]string `json:"v,omitempty"`
	Persistent bool              `json:"p,omitempty"`
}

// Handler attaches a lazily loaded session to each request and saves it after
// the handler when it changed. It must run after tenant resolution.
func (s *Store) Handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		t := server.Tenant(c)
		sess := &Session{store: s, c: c, tenantID: t.ID}
		if v := c.Cookies(CookieName); validID(v) {
			sess.cookieID = strings.Clone(v)
		}
		c.Locals(localsKey, sess)
		err := c.Next()
		if sess.loaded && !sess.destroyed && sess.modified() {
			if serr := sess.save(c.UserContext()); serr != nil {
				s.log.Error("session save failed", "err", serr, "tenant_id", t.ID, "request_id", server.RequestID(c))
			}
		}
		return err
	}
}

// Load returns the request's session, reading it from Redis on first use.
// The error is a Redis failure; the session is then empty (anonymous).
func Load(c *fiber.Ctx) (*Session, error) {
	sess, ok := c.Locals(localsKey).(*Session)
	if !ok {
		return nil, errors.New("sessions: middleware not installed")
	}
	if !sess.loaded {
		sess.load(c.UserContext())
	}
	return sess, sess.loadErr
}

// Get is Load for callers that treat an unreachable store as "anonymous";
// the failure is logged. It panics when the middleware is not installed.
func Get(c *fiber.Ctx) *Session {
	sess, err := Load(c)
	if sess == nil {
		panic(err)
	}
	if err != nil {
		sess.store.log.Warn("session load failed, treating as anonymous", "err", err, "tenant_id", sess.tenantID)
	}
	return sess
}

// Save writes the request's session now (if it changed) and sets the cookie.
func Save(c *fiber.Ctx) error {
	sess, err := Load(c)
	if sess == nil {
		return err
	}
	if sess.destroyed || !sess.modified() {
		return nil
	}
	return sess.save(c.UserContext())
}

// Regenerate gives the session a new id, keeping its data, and deletes the
// old record (login: defeats session fixation). The cookie is set on save.
func Regenerate(c *fiber.Ctx) error {
	sess, err := Load(c)
	if sess == nil {
		return err
	}
	old := sess.id
	sess.id = ""
	sess.dirty = true
	sess.destroyed = false
	if old == "" {
		return nil
	}
	ctx, cancel := sess.store.ctx(c.UserContext())
	defer cancel()
	_, err = sess.store.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, sess.store.sessKey(sess.tenantID, old))
		if sess.saved.UserID != 0 {
			p.SRem(ctx, sess.store.userKey(sess.tenantID, sess.saved.UserID), old)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("regenerate session: %w", err)
	}
	// The new record starts from nothing in Redis.
	sess.saved = record{}
	return nil
}

// Destroy deletes the session (logout) and expires the cookie.
func Destroy(c *fiber.Ctx) error {
	sess, err := Load(c)
	if sess == nil {
		return err
	}
	id := sess.id
	if id == "" {
		id = sess.cookieID
	}
	uid := sess.saved.UserID
	*sess = Session{store: sess.store, c: sess.c, tenantID: sess.tenantID, loaded: true, destroyed: true}
	sess.store.expireCookie(c)
	if id == "" {
		return nil
	}
	ctx, cancel := sess.store.ctx(c.UserContext())
	defer cancel()
	_, err = sess.store.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, sess.store.sessKey(sess.tenantID, id))
		if uid != 0 {
			p.SRem(ctx, sess.store.userKey(sess.tenantID, uid), id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	return nil
}

// SetPersistent chooses a cookie that lasts TTL (true) or ends with the
// browser (false: the login had remember_me != "true"). The server-side
// lifetime is TTL either way.
func (s *Session) SetPersistent(persistent bool) {
	s.persistent = persistent
	s.dirty = true
}

// Persistent reports whether the cookie outlives the browser session.
func (s *Session) Persistent() bool { return s.persistent }

// ID is the session's id, "" while it has none (a new, unsaved session).
func (s *Session) ID() string { return s.id }

// Set stores a value under key.
func (s *Session) Set(key, value string) {
	if s.Values == nil {
		s.Values = map[string]string{}
	}
	s.Values[key] = value
}

// Value returns the value under key ("" when absent).
func (s *Session) Value(key string) string { return s.Values[key] }

// AuthHash is the value to keep in Session.AuthHash for an account: an HMAC
// of its password hash under the tenant's session key, so the session holds
// nothing derived from the password without the key, and changes when the
// password does.
func AuthHash(key []byte, passwordHash string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("swa/session-auth\x00"))
	m.Write([]byte(passwordHash))
	return hex.EncodeToString(m.Sum(nil))
}

// AuthMatches reports whether the session was signed in with the account's
// current password hash (constant time). On false, sign the session out.
func (s *Session) AuthMatches(key []byte, passwordHash string) bool {
	return s.AuthHash != "" && hmac.Equal([]byte(s.AuthHash), []byte(AuthHash(key, passwordHash)))
}

// Flush clears the data and the user, keeping the session (and id) alive.
func (s *Session) Flush() {
	s.UserID, s.AuthHash, s.Values = 0, "", nil
}

func (s *Session) modified() bool {
	if s.dirty {
		return true
	}
	return s.UserID != s.saved.UserID || s.AuthHash != s.saved.AuthHash ||
		!maps.Equal(nonNil(s.Values), nonNil(s.saved.Values))
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (s *Session) load(ctx context.Context) {
	s.loaded = true
	if s.cookieID == "" {
		return
	}
	ctx, cancel := s.store.ctx(ctx)
	defer cancel()
	raw, err := s.store.rdb.Get(ctx, s.store.sessKey(s.tenantID, s.cookieID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return
	}
	if err != nil {
		s.loadErr = fmt.Errorf("load session: %w", err)
		return
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		// A record we cannot read is a record we do not have.
		return
	}
	s.id = s.cookieID
	s.saved = r
	s.UserID, s.AuthHash, s.persistent = r.UserID, r.AuthHash, r.Persistent
	s.Values = maps.Clone(r.Values)
}

func (s *Session) save(ctx context.Context) error {
	st := s.store
	if s.id == "" {
		id, err := newID()
		if err != nil {
			return err
		}
		s.id, s.fresh = id, true
	}
	r := record{UserID: s.UserID, AuthHash: s.AuthHash, Values: maps.Clone(s.Values), Persistent: s.persistent}
	if len(r.Values) == 0 {
		r.Values = nil
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	mode := "XX" // an existing session: only while it still exists
	if s.fresh {
		mode = "NX" // a new id must not collide with anyone's
	}
	oldSet, newSet := "", ""
	if s.saved.UserID != 0 && s.saved.UserID != r.UserID {
		oldSet = st.userKey(s.tenantID, s.saved.UserID)
	}
	if r.UserID != 0 {
		newSet = st.userKey(s.tenantID, r.UserID)
	}
	ctx, cancel := st.ctx(ctx)
	defer cancel()
	ok, err := saveScript.Run(ctx, st.rdb, []string{st.sessKey(s.tenantID, s.id), oldSet, newSet},
		raw, st.ttl.Milliseconds(), mode, s.id).Int()
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if ok == 0 {
		if s.fresh {
			return errors.New("save session: id collision")
		}
		// Destroyed meanwhile (logout elsewhere, password change): a request
		// that loaded it earlier must not bring it back.
		s.destroyed = true
		st.expireCookie(s.c)
		return nil
	}
	s.saved, s.dirty, s.fresh = r, false, false
	st.setCookie(s.c, s.id, s.persistent)
	return nil
}

// saveScript writes a session and its user-set membership atomically:
// KEYS = session key, set to leave ("" for none), set to join ("" for none);
// ARGV = data, TTL in ms, NX or XX, session id. It returns 0 when the SET
// condition failed and nothing was written.
var saveScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], ARGV[3]) then return 0 end
if KEYS[2] ~= '' then redis.call('SREM', KEYS[2], ARGV[4]) end
if KEYS[3] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
`)

// DestroyAllForUser ends every session of a user on a tenant (a password
// change or reset). A session saved again later in the same request (the
// caller's own, after Regenerate) survives.
func (s *Store) DestroyAllForUser(ctx context.Context, tenantID, userID int64) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	uk := s.userKey(tenantID, userID)
	ids, err := s.rdb.SMembers(ctx, uk).Result()
	if err != nil {
		return fmt.Errorf("destroy sessions of user %d: %w", userID, err)
	}
	keys := make([]string, 0, len(ids)+1)
	for _, id := range ids {
		keys = append(keys, s.sessKey(tenantID, id))
	}
	keys = append(keys, uk)
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("destroy sessions of user %d: %w", userID, err)
	}
	return nil
}

func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(parent, s.timeout)
}

func (s *Store) sessKey(tenantID int64, id string) string {
	return s.prefix + strconv.FormatInt(tenantID, 10) + ":sess:" + id
}

func (s *Store) userKey(tenantID, userID int64) string {
	return s.prefix + strconv.FormatInt(tenantID, 10) + ":user:" + strconv.FormatInt(userID, 10) + ":sessions"
}

func (s *Store) setCookie(c *fiber.Ctx, id string, persistent bool) {
	ck := &fiber.Cookie{
		Name:     CookieName,
		Value:    id,
		Path:     "/",
		Domain:   server.Tenant(c).Settings.CookieDomain,
		Secure:   server.IsHTTPS(c),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	}
	if persistent {
		ck.MaxAge = int(s.ttl / time.Second)
		ck.Expires = time.Now().Add(s.ttl)
	} else {
		ck.SessionOnly = true
	}
	c.Cookie(ck)
}

func (s *Store) expireCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name:     CookieName,
		Value:    "",
		Path:     "/",
		Domain:   server.Tenant(c).Settings.CookieDomain,
		Secure:   server.IsHTTPS(c),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
		Expires:  time.Unix(0, 0).UTC(),
	})
}

func validID(v string) bool {
	if len(v) != idLength {
		return false
	}
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(idAlphabet, v[i]) < 0 {
			return false
		}
	}
	return true
}

// newID returns idLength characters of idAlphabet from crypto/rand, without
// modulo bias (bytes >= 252 are redrawn).
func newID() (string, error) {
	const limit = 256 - 256%len(idAlphabet)
	out := make([]byte, 0, idLength)
	buf := make([]byte, idLength+8)
	for len(out) < idLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("session id: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < idLength {
				out = append(out, idAlphabet[int(b)%len(idAlphabet)])
			}
		}
	}
	return string(out), nil
}
