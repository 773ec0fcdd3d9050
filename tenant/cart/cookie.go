package cart

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/server"
)

// CookieName is the anonymous cart cookie (STARTUPWEBAPP_API.md §1.5).
const CookieName = "an_ct"

// CookieMaxAge is the an_ct cookie's lifetime in seconds (one year).
const CookieMaxAge = 31536000

// cookieSalt is Django's salt for an_ct: the cookie name followed by the
// salt the upstream view passes to set_signed_cookie.
const cookieSalt = CookieName + "anonymouscartcookieisthis"

// idLength and idAlphabet follow upstream's random strings (§1.11).
const (
	idLength   = 20
	idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// NewAnonymousID returns a fresh 20-character [A-Za-z0-9] cart id.
func NewAnonymousID() (string, error) {
	return randomString(idLength)
}

func randomString(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			// 248 = 4*62: bytes above it are redrawn to avoid modulo bias.
			if b < 248 && len(out) < n {
				out = append(out, idAlphabet[int(b)%len(idAlphabet)])
			}
		}
	}
	return string(out), nil
}

// signerKey derives the HMAC key the way Django's TimestampSigner does for
// a signed cookie: SHA256(salt + "signer" + "django.http.cookies" + secret).
// With the tenant's session key as SECRET_KEY, a cookie signed for one
// tenant does not verify on another.
func signerKey(secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte(cookieSalt + "signer" + "django.http.cookies"))
	h.Write(secret)
	return h.Sum(nil)
}

func signature(secret []byte, value string) string {
	m := hmac.New(sha256.New, signerKey(secret))
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// base62 encodes n with Django's alphabet 0-9A-Za-z.
func base62(n int64) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	if n <= 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append(b, digits[n%62])
		n /= 62
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// SignAnonymousID returns the an_ct cookie value for id:
// "<id>:<base62 unix time>:<signature>" (Django's signed-cookie format).
func SignAnonymousID(secret []byte, id string, now time.Time) string {
	v := id + ":" + base62(now.Unix())
	return v + ":" + signature(secret, v)
}

// VerifyAnonymousID returns the cart id inside a signed an_ct value, and
// false when the value is malformed or its signature is not this tenant's.
// No age is enforced, as upstream.
func VerifyAnonymousID(secret []byte, value string) (string, bool) {
	i := strings.LastIndexByte(value, ':')
	if i <= 0 || len(secret) == 0 {
		return "", false
	}
	signed, sig := value[:i], value[i+1:]
	if !hmac.Equal([]byte(sig), []byte(signature(secret, signed))) {
		return "", false
	}
	j := strings.LastIndexByte(signed, ':')
	if j <= 0 {
		return "", false
	}
	id := signed[:j]
	if len(id) > 100 { // the column's length; nothing longer was ever issued
		return "", false
	}
	return id, true
}

// CookieID returns the verified cart id of the request's an_ct cookie, or
// "" when there is none or it does not verify under any of keys: the
// tenant's key first, then those its rotations replaced, so a rotation
// does not empty the carts of every visitor.
func CookieID(c *fiber.Ctx, keys ...[]byte) string {
	v := c.Cookies(CookieName)
	if v == "" {
		return ""
	}
	for _, k := range keys {
		if id, ok := VerifyAnonymousID(k, v); ok {
			return strings.Clone(id)
		}
	}
	return ""
}

// SetCookie (re)sets an_ct to the signed id: Path /, the tenant's cookie
// domain, one year, neither HttpOnly nor Secure nor SameSite (§1.5).
func SetCookie(c *fiber.Ctx, secret []byte, id string) {
	c.Cookie(&fiber.Cookie{
		Name:    CookieName,
		Value:   SignAnonymousID(secret, id, time.Now()),
		Path:    "/",
		Domain:  server.Tenant(c).Settings.CookieDomain,
		MaxAge:  CookieMaxAge,
		Expires: time.Now().Add(CookieMaxAge * time.Second),
		// Fiber writes SameSite=Lax unless told not to; upstream sends none.
		SameSite: fiber.CookieSameSiteDisabled,
	})
}

// ExpireCookie deletes an_ct (successful login, logout): Max-Age 0 and an
// expiry in 1970, with the same Path and Domain.
func ExpireCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name:     CookieName,
		Value:    "",
		Path:     "/",
		Domain:   server.Tenant(c).Settings.CookieDomain,
		MaxAge:   -1,
		Expires:  time.Unix(0, 0).UTC(),
		SameSite: fiber.CookieSameSiteDisabled,
	})
}
