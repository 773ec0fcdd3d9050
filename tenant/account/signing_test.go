package account

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// djangoTime is the instant the Django vectors below were signed at
// (base62 "1xWNEg").
var djangoTime = time.Unix(1795652474, 0)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

// TestDjangoVectors pins values produced by Django 3.2's signing module with
// SECRET_KEY "tenant-one-session-key": an upstream installation's values
// verify here given its key, and ours verify there.
func TestDjangoVectors(t *testing.T) {
	t.Parallel()
	s := NewSigner([]byte("tenant-one-session-key")).WithClock(at(djangoTime))
	tests := []struct {
		name, got, want string
	}{
		{"unsubscribe token", s.Sign(saltUnsubscribe, "fAJOvOQoG65GOW7GNc8L"), "fAJOvOQoG65GOW7GNc8L:sIzFukH4EsBRZ5tqFAknyKTsemXBifsDCXnyvpJFhRo"},
		{"bare unsubscribe token", s.UnsubscribeToken("fAJOvOQoG65GOW7GNc8L"), "sIzFukH4EsBRZ5tqFAknyKTsemXBifsDCXnyvpJFhRo"},
		{"verification code", s.VerificationCode("CjTvx1UWsvf09kWIvVzB"), "CjTvx1UWsvf09kWIvVzB:1xWNEg:kzrX3kUlpKDtD-hZiNJdoHugpGT3-7p2T1lC2IhAP3U"},
		{"reset code", s.ResetCode("CjTvx1UWsvf09kWIvVzB"), "CjTvx1UWsvf09kWIvVzB:1xWNEg:KjWvy91Cu2j4u_t4LXE_aJCa8kc6phr12ROqKQ1SRHA"},
		{"an_ct cookie", s.CartCookieValue("Jgl5eesrgwWpWvpZ9w2Y"), "Jgl5eesrgwWpWvpZ9w2Y:1xWNEg:ook_RfUw2XP-XDu8L7QXF7sS2wRZwWkshiOZHV7XTRo"},
		{"anonymousclientevent cookie", s.SignCookie(ClientEventCookie, saltClientEvent, "Jgl5eesrgwWpWvpZ9w2Y"), "Jgl5eesrgwWpWvpZ9w2Y:1xWNEg:_f0lafSCDFb0PCmoYmeKRbMkYxY-r5KTOJDejn36Pwk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Fatalf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
	if !s.ValidClientEventCookie("Jgl5eesrgwWpWvpZ9w2Y:1xWNEg:_f0lafSCDFb0PCmoYmeKRbMkYxY-r5KTOJDejn36Pwk") {
		t.Error("Django-signed anonymousclientevent cookie refused")
	}
	if id, err := s.CartID("Jgl5eesrgwWpWvpZ9w2Y:1xWNEg:ook_RfUw2XP-XDu8L7QXF7sS2wRZwWkshiOZHV7XTRo"); err != nil || id != "Jgl5eesrgwWpWvpZ9w2Y" {
		t.Errorf("CartID = %q, %v", id, err)
	}
}

func TestBase62(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n int64
		s string
	}{{0, "0"}, {61, "z"}, {62, "10"}, {1795652474, "1xWNEg"}, {1795652478, "1xWNEk"}, {-62, "-10"}}
	for _, tt := range tests {
		if got := base62Encode(tt.n); got != tt.s {
			t.Errorf("base62Encode(%d) = %s, want %s", tt.n, got, tt.s)
		}
		if got, ok := base62Decode(tt.s); !ok || got != tt.n {
			t.Errorf("base62Decode(%s) = %d, %v", tt.s, got, ok)
		}
	}
	// The fixture's verification codes were signed during its recording.
	n, ok := base62Decode("1xWNEk")
	if got := time.Unix(n, 0).UTC().Format(time.RFC3339); !ok || got != "2026-11-26T00:21:18Z" {
		t.Errorf("fixture timestamp = %s", got)
	}
	for _, bad := range []string{"", "-", "!", "12345678901"} {
		if _, ok := base62Decode(bad); ok {
			t.Errorf("base62Decode(%q) accepted", bad)
		}
	}
}

func TestCodesRejectTamperingExpiryAndOtherTenants(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 8, 0, 0, 0, time.UTC)
	a := NewSigner([]byte("key-of-tenant-a")).WithClock(at(now))
	b := NewSigner([]byte("key-of-tenant-b")).WithClock(at(now))
	code := a.VerificationCode("CjTvx1UWsvf09kWIvVzB")
	reset := a.ResetCode("resetresetresetreset")

	type check func(s *Signer, code string) (string, error)
	verify := func(s *Signer, c string) (string, error) { return s.CheckVerificationCode(c) }
	resetCheck := func(s *Signer, c string) (string, error) { return s.CheckResetCode(c) }
	cart := func(s *Signer, c string) (string, error) { return s.CartID(c) }
	cartCookie := a.CartCookieValue("Jgl5eesrgwWpWvpZ9w2Y")

	tests := []struct {
		name  string
		s     *Signer
		code  string
		check check
		want  error
		value string
	}{
		{"verification ok", a, code, verify, nil, "CjTvx1UWsvf09kWIvVzB"},
		{"verification at 24h", a.WithClock(at(now.Add(24 * time.Hour))), code, verify, nil, "CjTvx1UWsvf09kWIvVzB"},
		{"verification after 24h", a.WithClock(at(now.Add(24*time.Hour + time.Second))), code, verify, ErrExpired, ""},
		{"verification other tenant", b, code, verify, ErrBadSignature, ""},
		{"verification tampered value", a, "X" + code[1:], verify, ErrBadSignature, ""},
		{"verification tampered time", a, strings.Replace(code, ":", ":1", 1), verify, ErrBadSignature, ""},
		{"verification tampered signature", a, code[:len(code)-1] + "A", verify, ErrBadSignature, ""},
		{"verification no separator", a, "abc", verify, ErrBadSignature, ""},
		{"verification signed as reset", a, reset, verify, ErrBadSignature, ""},
		{"reset ok", a, reset, resetCheck, nil, "resetresetresetreset"},
		{"reset after 1h", a.WithClock(at(now.Add(time.Hour + time.Second))), reset, resetCheck, ErrExpired, ""},
		{"reset other tenant", b, reset, resetCheck, ErrBadSignature, ""},
		{"reset signed as verification", a, code, resetCheck, ErrBadSignature, ""},
		{"cart cookie ok years later", a.WithClock(at(now.Add(5 * 365 * 24 * time.Hour))), cartCookie, cart, nil, "Jgl5eesrgwWpWvpZ9w2Y"},
		{"cart cookie other tenant", b, cartCookie, cart, ErrBadSignature, ""},
		{"cart cookie plain value", a, "Jgl5eesrgwWpWvpZ9w2Y", cart, ErrBadSignature, ""},
		{"cart cookie signed without cookie key", a, a.SignTimestamp("an_ctanonymouscartcookieisthis", "Jgl5eesrgwWpWvpZ9w2Y"), cart, ErrBadSignature, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := tt.check(tt.s, tt.code)
			if !errors.Is(err, tt.want) || v != tt.value {
				t.Fatalf("got %q, %v; want %q, %v", v, err, tt.value, tt.want)
			}
		})
	}
}

func TestUnsubscribeTokens(t *testing.T) {
	t.Parallel()
	a, b := NewSigner([]byte("key-of-tenant-a")), NewSigner([]byte("key-of-tenant-b"))
	tok := a.UnsubscribeToken("fAJOvOQoG65GOW7GNc8L")
	if len(tok) != 43 {
		t.Fatalf("token %q has %d characters, want 43", tok, len(tok))
	}
	if !a.CheckUnsubscribeToken("fAJOvOQoG65GOW7GNc8L", tok) {
		t.Error("own token refused")
	}
	if b.CheckUnsubscribeToken("fAJOvOQoG65GOW7GNc8L", tok) {
		t.Error("another tenant's token accepted")
	}
	if a.CheckUnsubscribeToken("gAJOvOQoG65GOW7GNc8L", tok) {
		t.Error("token accepted for another string")
	}
}

// TestRotatedKeysStillVerify: after a rotation, what the replaced key signed
// (mailed links, unsubscribe tokens, cookies) still verifies, the new key
// signs, and a key the tenant never had verifies nothing.
func TestRotatedKeysStillVerify(t *testing.T) {
	t.Parallel()
	oldKey, newKey := []byte("key-before-rotation"), []byte("key-after-rotation")
	before := NewSigner(oldKey)
	base := time.Now()
	before = before.WithClock(func() time.Time { return base })
	verify, tok, cart := before.VerificationCode("verify-me"), before.UnsubscribeToken("fAJOvOQoG65GOW7GNc8L"), before.CartCookieValue("cart-1")

	after := NewSigner(newKey, oldKey).WithClock(func() time.Time { return base.Add(time.Hour) })
	if v, err := after.CheckVerificationCode(verify); err != nil || v != "verify-me" {
		t.Errorf("code signed before the rotation: %q, %v", v, err)
	}
	if !after.CheckUnsubscribeToken("fAJOvOQoG65GOW7GNc8L", tok) {
		t.Error("unsubscribe token signed before the rotation refused")
	}
	if id, err := after.CartID(cart); err != nil || id != "cart-1" {
		t.Errorf("cart cookie signed before the rotation: %q, %v", id, err)
	}
	// The new key signs.
	if after.UnsubscribeToken("fAJOvOQoG65GOW7GNc8L") == tok {
		t.Error("the signer still signs with the replaced key")
	}
	// An old code past its age is expired, not "bad".
	late := NewSigner(newKey, oldKey).WithClock(func() time.Time { return base.Add(VerificationMaxAge + time.Hour) })
	if _, err := late.CheckVerificationCode(verify); !errors.Is(err, ErrExpired) {
		t.Errorf("expired old code: %v, want ErrExpired", err)
	}
	// Once the replaced key is dropped, its values are dead.
	only := NewSigner(newKey, []byte("a-key-never-used"))
	if only.CheckUnsubscribeToken("fAJOvOQoG65GOW7GNc8L", tok) {
		t.Error("a token verified under a key the signer does not hold")
	}
	if _, err := only.CheckVerificationCode(verify); !errors.Is(err, ErrBadSignature) {
		t.Errorf("code under a dropped key: %v, want ErrBadSignature", err)
	}
}

func TestClientEventCookie(t *testing.T) {
	t.Parallel()
	a, b := NewSigner([]byte("key-of-tenant-a")), NewSigner([]byte("key-of-tenant-b"))
	c := a.ClientEventCookieValue()
	parts := strings.Split(c, ":")
	if len(parts) != 3 || len(parts[0]) != 20 {
		t.Fatalf("cookie %q: want <20 chars>:<time>:<sig>", c)
	}
	if !a.ValidClientEventCookie(c) || b.ValidClientEventCookie(c) {
		t.Fatal("cookie must verify for its tenant only")
	}
	if c == a.ClientEventCookieValue() {
		t.Fatal("two cookies are equal")
	}
}

func TestRandomString(t *testing.T) {
	t.Parallel()
	seen := map[byte]bool{}
	for range 200 {
		s := RandomString(20)
		if len(s) != 20 {
			t.Fatalf("len %d", len(s))
		}
		for i := 0; i < len(s); i++ {
			if !strings.ContainsRune(randomAlphabet, rune(s[i])) {
				t.Fatalf("character %q outside [A-Za-z0-9]", s[i])
			}
			seen[s[i]] = true
		}
	}
	if len(seen) != 62 {
		t.Fatalf("only %d of 62 characters seen in 4000 draws", len(seen))
	}
}

func FuzzUnsign(f *testing.F) {
	s := NewSigner([]byte("fuzz-key")).WithClock(at(djangoTime))
	f.Add(s.VerificationCode("abc"))
	f.Add(s.CartCookieValue("abc"))
	f.Add("a:b:c")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		// Nothing but our own signatures may verify, and nothing may panic.
		if v, err := s.CheckVerificationCode(in); err == nil && s.VerificationCode(v) != in {
			t.Fatalf("%q verified as %q", in, v)
		}
		_, _ = s.CartID(in)
		_ = s.ValidClientEventCookie(in)
	})
}
