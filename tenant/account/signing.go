package account

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"
)

// Signing salts and lifetimes of the API's §1.11 (docs/api.md).
const (
	saltEmailVerification = "email_verification"
	saltResetPassword     = "reset_email"
	saltUnsubscribe       = "email_unsubscribe"
	saltCart              = "anonymouscartcookieisthis"
	saltClientEvent       = "clienteventanonymousclienteventoccurrence"

	// CartCookie and ClientEventCookie are the names of the two signed cookies.
	CartCookie        = "an_ct"
	ClientEventCookie = "anonymousclientevent"

	// VerificationMaxAge is how long an e-mail verification code is accepted.
	VerificationMaxAge = 24 * time.Hour
	// ResetMaxAge is how long a password-reset code is accepted; the mail
	// says one hour, and so do we (upstream accepted 24 h, §12 Q2).
	ResetMaxAge = time.Hour
)

// Signature errors. Callers map both to the contract's "signature-invalid"
// (upstream never told them apart, §12 Q1).
var (
	ErrBadSignature = errors.New("bad signature")
	ErrExpired      = errors.New("signature expired")
)

// Signer produces and checks Django-compatible signed values keyed by one
// tenant's secret (its TenantBundle.SessionKey): a value signed for one
// tenant never verifies on another. The formats are Django's Signer
// (value:sig) and TimestampSigner (value:base62 time:sig), with sig the
// unpadded URL-safe base64 of HMAC-SHA256 under SHA256(salt+"signer"+key),
// so values an upstream installation signed with the same key still verify.
// It signs with its first key; a value signed under any of the others (the
// keys a rotation replaced) still verifies.
type Signer struct {
	key  []byte
	keys [][]byte // key, then the replaced ones
	now  func() time.Time
}

// NewSigner returns a signer keyed by secret: the tenant's session key as
// csrf.BundleKey returns it (the decoded TenantBundle.SessionKey), or an
// imported installation's SECRET_KEY. Values signed under one of previous
// still verify.
func NewSigner(secret []byte, previous ...[]byte) *Signer {
	return &Signer{key: secret, keys: append([][]byte{secret}, previous...), now: time.Now}
}

// verify runs check under each key until one accepts the value; a value
// whose signature verified but that expired reports ErrExpired.
func (s *Signer) verify(check func(key []byte) (string, error)) (string, error) {
	err := ErrBadSignature
	for _, k := range s.keys {
		v, e := check(k)
		if e == nil {
			return v, nil
		}
		if errors.Is(e, ErrExpired) {
			err = e
		}
	}
	return "", err
}

// WithClock returns a copy of s reading time from now (tests).
func (s *Signer) WithClock(now func() time.Time) *Signer {
	c := *s
	c.now = now
	return &c
}

func signature(key []byte, salt, value string) string {
	k := sha256.Sum256(append([]byte(salt+"signer"), key...))
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func unsign(key []byte, salt, signed string) (string, error) {
	i := strings.LastIndexByte(signed, ':')
	if i < 0 {
		return "", ErrBadSignature
	}
	value, sig := signed[:i], signed[i+1:]
	if !hmac.Equal([]byte(sig), []byte(signature(key, salt, value))) {
		return "", ErrBadSignature
	}
	return value, nil
}

// Signature is the bare signature of value (Django Signer), as stored for
// unsubscribe tokens.
func (s *Signer) Signature(salt, value string) string { return signature(s.key, salt, value) }

// Sign returns value:sig.
func (s *Signer) Sign(salt, value string) string { return value + ":" + signature(s.key, salt, value) }

// Unsign checks value:sig and returns value.
func (s *Signer) Unsign(salt, signed string) (string, error) {
	return s.verify(func(k []byte) (string, error) { return unsign(k, salt, signed) })
}

// SignTimestamp returns value:base62(now):sig.
func (s *Signer) SignTimestamp(salt, value string) string {
	return s.Sign(salt, value+":"+base62Encode(s.now().Unix()))
}

// UnsignTimestamp checks a value from SignTimestamp and, when maxAge > 0,
// its age.
func (s *Signer) UnsignTimestamp(salt, signed string, maxAge time.Duration) (string, error) {
	now := s.now()
	return s.verify(func(k []byte) (string, error) { return unsignTimestamp(k, salt, signed, maxAge, now) })
}

func unsignTimestamp(key []byte, salt, signed string, maxAge time.Duration, now time.Time) (string, error) {
	v, err := unsign(key, salt, signed)
	if err != nil {
		return "", err
	}
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return "", ErrBadSignature
	}
	ts, ok := base62Decode(v[i+1:])
	if !ok {
		return "", ErrBadSignature
	}
	if maxAge > 0 && now.Unix()-ts > int64(maxAge/time.Second) {
		return "", ErrExpired
	}
	return v[:i], nil
}

// cookieKey is Django's signed-cookie key: "django.http.cookies" + secret.
func cookieKey(secret []byte) []byte {
	return append([]byte("django.http.cookies"), secret...)
}

// SignCookie signs a cookie value as Django's set_signed_cookie(name, value,
// salt) does.
func (s *Signer) SignCookie(name, salt, value string) string {
	v := value + ":" + base62Encode(s.now().Unix())
	return v + ":" + signature(cookieKey(s.key), name+salt, v)
}

// UnsignCookie reads a signed cookie; no age is enforced (as upstream).
func (s *Signer) UnsignCookie(name, salt, signed string) (string, error) {
	now := s.now()
	return s.verify(func(k []byte) (string, error) { return unsignTimestamp(cookieKey(k), name+salt, signed, 0, now) })
}

// CartCookieValue signs an anonymous cart id for the an_ct cookie.
func (s *Signer) CartCookieValue(cartID string) string {
	return s.SignCookie(CartCookie, saltCart, cartID)
}

// CartID reads the anonymous cart id from an an_ct cookie value.
func (s *Signer) CartID(cookie string) (string, error) {
	return s.UnsignCookie(CartCookie, saltCart, cookie)
}

// ClientEventCookieValue signs a new random anonymous id for the
// anonymousclientevent cookie.
func (s *Signer) ClientEventCookieValue() string {
	return s.SignCookie(ClientEventCookie, saltClientEvent, RandomString(20))
}

// ValidClientEventCookie reports whether an anonymousclientevent value
// carries our signature.
func (s *Signer) ValidClientEventCookie(cookie string) bool {
	_, err := s.UnsignCookie(ClientEventCookie, saltClientEvent, cookie)
	return err == nil
}

// VerificationCode signs a member's email_verification_string.
func (s *Signer) VerificationCode(str string) string {
	return s.SignTimestamp(saltEmailVerification, str)
}

// CheckVerificationCode returns the string inside a verification code no
// older than VerificationMaxAge.
func (s *Signer) CheckVerificationCode(code string) (string, error) {
	return s.UnsignTimestamp(saltEmailVerification, code, VerificationMaxAge)
}

// ResetCode signs a member's reset_password_string.
func (s *Signer) ResetCode(str string) string { return s.SignTimestamp(saltResetPassword, str) }

// CheckResetCode returns the string inside a reset code no older than
// ResetMaxAge. Single use is the caller's: it clears the stored string.
func (s *Signer) CheckResetCode(code string) (string, error) {
	return s.UnsignTimestamp(saltResetPassword, code, ResetMaxAge)
}

// UnsubscribeToken is the public unsubscribe token of an
// email_unsubscribe_string: the bare signature (43 characters).
func (s *Signer) UnsubscribeToken(str string) string { return s.Signature(saltUnsubscribe, str) }

// CheckUnsubscribeToken reports whether token is the signature of str
// under one of the signer's keys (a mailed link outlives a rotation).
func (s *Signer) CheckUnsubscribeToken(str, token string) bool {
	for _, k := range s.keys {
		if hmac.Equal([]byte(token), []byte(signature(k, saltUnsubscribe, str))) {
			return true
		}
	}
	return false
}

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func base62Encode(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b []byte
	for n > 0 {
		b = append(b, base62Alphabet[n%62])
		n /= 62
	}
	if neg {
		b = append(b, '-')
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

func base62Decode(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(base62Alphabet, s[i])
		if d < 0 {
			return 0, false
		}
		n = n*62 + int64(d)
	}
	if neg {
		n = -n
	}
	return n, true
}

const randomAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// RandomString returns n characters from [A-Za-z0-9], uniformly, from the
// system's secure random source (identifiers, codes, cart and event ids).
func RandomString(n int) string {
	return randomFrom(randomAlphabet, n)
}

func randomFrom(alphabet string, n int) string {
	out := make([]byte, n)
	buf := make([]byte, n*2)
	for i := 0; i < n; {
		_, _ = rand.Read(buf)
		for _, b := range buf {
			// 248 = 4*62: reject the tail so every character is equally likely.
			if b >= 248 {
				continue
			}
			out[i] = alphabet[int(b)%len(alphabet)]
			i++
			if i == n {
				break
			}
		}
	}
	return string(out)
}
