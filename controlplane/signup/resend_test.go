package signup

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/ratelimit"
)

// TestResendLink: a new link replaces the old one (which stops working);
// an address without a pending sign-up gets the very same answer and no
// mail; requests past the per-email and the per-address rates are 429.
func TestResendLink(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.ResendRate = ratelimit.Rate{N: 6, Window: time.Hour}
		o.ResendEmailRate = ratelimit.Rate{N: 3, Window: time.Hour}
	})
	suffix := strings.ToLower(pgtest.RandomName("r"))
	email := "resend-" + suffix + "@example.test"
	if code, loc, page := h.post("/signup", signUp(email, "resend-"+strings.ReplaceAll(suffix, "_", ""))); code != 303 || loc != "/signup/sent" {
		t.Fatalf("sign-up: %d %q\n%s", code, loc, page)
	}
	first := tokenRE.FindStringSubmatch(h.mp.Wait(t, `to:"`+email+`"`, 1, 30*time.Second)[0].Text)[1]
	if code, page := h.get("/signup/sent"); code != 200 || !strings.Contains(page, `action="/signup/resend"`) {
		t.Errorf("the sent page has no resend form: %d\n%s", code, page)
	}
	if code, page := h.get("/signup/resend"); code != 200 || !strings.Contains(page, `action="/signup/resend"`) || !strings.Contains(page, `name="csrf"`) {
		t.Errorf("resend page: %d\n%s", code, page)
	}

	// 1st request for the address (1st from this client).
	code, loc, known := h.post("/signup/resend", url.Values{"email": {strings.ToUpper(email)}})
	if code != 303 || loc != "/signup/sent" {
		t.Fatalf("resend: %d %q\n%s", code, loc, known)
	}
	msgs := h.mp.Wait(t, `to:"`+email+`"`, 2, 30*time.Second)
	second := tokenRE.FindStringSubmatch(msgs[0].Text)[1] // newest first
	if second == first || !strings.HasPrefix(msgs[0].Subject, "Confirm your email to create Test Shop") {
		t.Fatalf("the second mail %q does not carry a new link (%s, first %s)", msgs[0].Subject, second, first)
	}
	if code, _ := h.get("/verify?token=" + first); code != 400 {
		t.Errorf("the replaced link: %d, want 400", code)
	}
	if code, _, _ := h.post("/verify", url.Values{"token": {first}}); code != 400 {
		t.Errorf("confirming with the replaced link: %d, want 400", code)
	}
	if code, page := h.get("/verify?token=" + second); code != 200 || !strings.Contains(page, "Confirm and create my shop") {
		t.Errorf("the new link: %d\n%s", code, page)
	}

	// An address with no sign-up: the same answer, and no mail (2nd from
	// this client).
	unknown := "nobody-" + suffix + "@example.test"
	ucode, uloc, upage := h.post("/signup/resend", url.Values{"email": {unknown}})
	if ucode != code || uloc != loc || upage != known {
		t.Errorf("unknown address: %d %q %q, known address: %d %q %q", ucode, uloc, upage, code, loc, known)
	}
	if code, _, page := h.post("/signup/resend", url.Values{"email": {"not an address"}}); code != 400 || !strings.Contains(page, "valid email") {
		t.Errorf("a malformed address: %d\n%s", code, page)
	}

	// Per email: the 2nd and 3rd pass, the 4th is refused (3rd to 5th
	// from this client).
	for i, want := range []int{303, 303, 429} {
		code, _, page := h.post("/signup/resend", url.Values{"email": {email}})
		if code != want {
			t.Fatalf("request %d for the address: %d, want %d\n%s", i+2, code, want, page)
		}
		if want == 429 && !strings.Contains(page, "Too many requests for a new link") {
			t.Errorf("the 429 page:\n%s", page)
		}
	}
	if n := h.mp.Count(t, `to:"`+email+`"`); n != 4 {
		t.Errorf("%d mails to the address, want 4 (the sign-up and 3 new links)", n)
	}
	if n := h.mp.Count(t, `to:"`+unknown+`"`); n != 0 {
		t.Errorf("%d mails to an address that never signed up", n)
	}
	// Per client: the 6th passes (another address), the 7th does not.
	if code, _, _ := h.post("/signup/resend", url.Values{"email": {"other-" + unknown}}); code != 303 {
		t.Errorf("6th request from the client: %d, want 303", code)
	}
	if code, _, _ := h.post("/signup/resend", url.Values{"email": {"third-" + unknown}}); code != 429 {
		t.Errorf("7th request from the client: %d, want 429", code)
	}
	// Without the CSRF token the request is refused.
	req := httptest.NewRequest(http.MethodPost, "http://www.example.test/signup/resend", strings.NewReader(url.Values{"email": {email}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := h.site.App().Test(req, 30_000)
	if err != nil || resp.StatusCode != 403 {
		t.Errorf("resend without the CSRF token: %v %v, want 403", resp.StatusCode, err)
	}
}
