package storefront_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func signUp(t *testing.T, e *env, c *client, username, email string) {
	t.Helper()
	p := c.post("/create-account", url.Values{"firstname": {"Jo"}, "lastname": {"Member"}, "username": {username},
		"email_address": {email}, "password": {"Xq7!first#Pw"}, "confirm_password": {"Xq7!first#Pw"}, "newsletter": {"true"}})
	if p.status != http.StatusSeeOther || p.location() != "/account/?notice=account-created" {
		t.Fatalf("create account = %d %q %s", p.status, p.location(), snippet(mainOf(p.body)))
	}
}

// TestAccountJourney: sign up, verify through the mailed link, sign out
// and in, edit information and preferences, change the password; the
// session is the API's on the same host.
func TestAccountJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, hostA)
	c.get("/create-account")
	// Invalid fields come back with the API's messages, the form kept.
	bad := c.post("/create-account", url.Values{"firstname": {"Jo"}, "lastname": {"Member"}, "username": {"jo"},
		"email_address": {"nope"}, "password": {"short"}, "confirm_password": {"short"}})
	mustContain(t, bad, "Please correct the fields marked below.", "The username you entered is too short.",
		"Please enter a valid email address.", `value="Jo"`)
	user, email := "member"+randomWord(), "member-"+randomWord()+"@example.com"
	signUp(t, e, c, user, email)
	acct := c.get("/account/?notice=account-created")
	mustContain(t, acct, "Welcome! Your account was created.", user, "not verified", "Send a new verification e-mail")
	if got := c.api("/user/logged-in"); got["logged_in"] != true || got["first_name"] != "Jo" {
		t.Fatalf("the API does not see the storefront's sign-in: %v", got)
	}
	welcome := e.deliver(t, `to:"`+email+`"`, 1)[0]
	link := mailLink(t, welcome, "email_verification_code=")
	if !strings.HasPrefix(link, e.origin(hostA)+"/account/?email_verification_code=") {
		t.Fatalf("verification link %s", link)
	}
	landing := c.get(link)
	mustContain(t, landing, "Verify your e-mail address", "Verify "+email)
	code, _ := url.Parse(link)
	v := c.post("/account/", url.Values{"email_verification_code": {code.Query().Get("email_verification_code")}})
	mustContain(t, c.follow(v), "your e-mail address is verified", ">verified<")
	// A used code is refused with the API's outcome.
	mustContain(t, c.follow(c.post("/account/", url.Values{"email_verification_code": {code.Query().Get("email_verification_code")}})),
		"already used or replaced")

	// Sign out, then the verification-less sign in goes to the account.
	out := c.post("/logout", nil)
	mustContain(t, c.follow(out), "You are signed out.")
	if got := c.api("/user/logged-in"); got["logged_in"] != false {
		t.Fatalf("still signed in after sign-out: %v", got)
	}
	// What the visitor put in the cart while signed out comes along when
	// signing in (the API's merge).
	if p := c.post("/product", url.Values{"name": {"RubberBands"}, "id": {"v26ujdy3N1"}, "sku_id": {"7"}, "quantity": {"2"}}); p.status != http.StatusSeeOther {
		t.Fatalf("anonymous add = %d", p.status)
	}
	wrong := c.post("/login", url.Values{"username": {user}, "password": {"wrong"}})
	mustContain(t, wrong, "The username or password is not correct.", `value="`+user+`"`)
	in := c.post("/login", url.Values{"username": {user}, "password": {"Xq7!first#Pw"}, "remember_me": {"true"}})
	if in.location() != "/account/?notice=signed-in" {
		t.Fatalf("sign in = %d %q", in.status, in.location())
	}
	mustContain(t, c.get("/cart"), "Multiple sizes and colors", `value="2"`, `aria-label="1 items in cart"`)
	// next= from the original's links ("checkout/confirm") is honoured;
	// another site is not.
	c2 := e.client(t, hostA)
	c2.get("/login")
	if p := c2.post("/login", url.Values{"username": {user}, "password": {"Xq7!first#Pw"}, "next": {"//evil.test/x"}}); p.location() != "/account/?notice=signed-in" {
		t.Errorf("next to another site = %q", p.location())
	}

	mustContain(t, c.get("/account/edit-my-information"), `value="Jo"`, `value="`+email+`"`)
	p := c.post("/account/edit-my-information", url.Values{"firstname": {"Joanna"}, "lastname": {"Member"}, "email_address": {email}})
	mustContain(t, c.follow(p), "Your information was saved.", "Joanna Member")
	p = c.post("/account/edit-communication-preferences", url.Values{"newsletter": {"true"}, "email_unsubscribe": {"true"}})
	mustContain(t, p, "Please choose either the newsletter or no e-mail at all.")
	p = c.post("/account/edit-communication-preferences", url.Values{})
	mustContain(t, c.follow(p), "Your communication preferences were saved.", "not subscribed")

	mustContain(t, c.get("/account/change-password"), "Current password")
	p = c.post("/account/change-password", url.Values{"current_password": {"nope"}, "new_password": {"Xq7!second#Pw"}, "confirm_new_password": {"Xq7!second#Pw"}})
	mustContain(t, p, "The current password you provided is incorrect.")
	p = c.post("/account/change-password", url.Values{"current_password": {"Xq7!first#Pw"}, "new_password": {"Xq7!second#Pw"}, "confirm_new_password": {"Xq7!second#Pw"}})
	mustContain(t, c.follow(p), "Your password was changed.")
	e.deliver(t, `to:"`+email+`" subject:"Password Changed"`, 1)
	// The other browser's session ended with the change.
	if got := c2.api("/user/logged-in"); got["logged_in"] != false {
		t.Errorf("other session survived the password change: %v", got)
	}
	c.post("/logout", nil)
	if p := c.post("/login", url.Values{"username": {user}, "password": {"Xq7!second#Pw"}}); p.location() != "/account/?notice=signed-in" {
		t.Errorf("sign in with the new password = %q", p.location())
	}
	// A member is not signed in on the other tenant.
	if p := e.client(t, hostB).get("/account/"); p.status != http.StatusSeeOther {
		t.Errorf("tenant beta /account/ = %d", p.status)
	}
}

// TestRecoveryAndForms: forgot username, reset and set password from the
// mailed link, unsubscribe from a mail link, the contact form, the terms
// of use agreement, the cookie notice, CSRF and rate limits.
func TestRecoveryAndForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, hostA)
	c.get("/")
	user, email := "recover"+randomWord(), "recover-"+randomWord()+"@example.com"
	signUp(t, e, c, user, email)
	c.post("/logout", nil)

	mustContain(t, c.follow(c.post("/forgot-username", url.Values{"email_address": {email}})), "we sent its username there")
	if m := e.deliver(t, `to:"`+email+`" subject:"Forgot Username"`, 1)[0]; !strings.Contains(m.Text, user) {
		t.Errorf("username mail lacks the username:\n%s", m.Text)
	}
	mustContain(t, c.follow(c.post("/reset-password", url.Values{"username": {user}, "email_address": {email}})), "we sent a link to reset")
	link := mailLink(t, e.deliver(t, `to:"`+email+`" subject:"Password Reset"`, 1)[0], "/set-new-password?password_reset_code=")
	if !strings.HasPrefix(link, e.origin(hostA)) {
		t.Fatalf("reset link %s", link)
	}
	form := c.get(link)
	lu, _ := url.Parse(link)
	resetCode := lu.Query().Get("password_reset_code")
	mustContain(t, form, `name="password_reset_code" value="`+resetCode+`"`)
	p := c.post("/set-new-password", url.Values{"username": {user}, "password_reset_code": {resetCode}, "new_password": {"weak"}, "confirm_new_password": {"weak"}})
	mustContain(t, p, "Please choose another password.", "too short")
	p = c.post("/set-new-password", url.Values{"username": {user}, "password_reset_code": {resetCode}, "new_password": {"Xq7!reset#Pw"}, "confirm_new_password": {"Xq7!reset#Pw"}})
	mustContain(t, c.follow(p), "Your new password is set.")
	if p := c.post("/login", url.Values{"username": {user}, "password": {"Xq7!reset#Pw"}}); p.location() != "/account/?notice=signed-in" {
		t.Fatalf("sign in after reset = %q", p.location())
	}

	// Terms of use: a newer version asks the member to agree.
	if _, err := e.dbA.Exec(context.Background(), `INSERT INTO terms_of_use_version (version, version_note, publication_date_time) VALUES (2, 'v2', now())`); err != nil {
		t.Fatal(err)
	}
	mustContain(t, c.get("/products"), "Our terms of use changed", `name="version" value="2"`)
	p = c.post("/terms-of-use", url.Values{"version": {"2"}, "next": {"/products"}})
	if p.location() != "/products?notice=terms-agreed" {
		t.Fatalf("agree = %d %q", p.status, p.location())
	}
	if strings.Contains(c.get("/products").body, "Our terms of use changed") {
		t.Error("terms banner after agreeing")
	}

	// Contact form: validation, then a stored chat message and the notice.
	p = c.post("/contact", url.Values{"name": {"Jo"}, "email_address": {"bad"}, "message": {"Hello"}})
	mustContain(t, p, "Please correct the fields marked below.", "Please enter a valid email address.")
	p = c.post("/contact", url.Values{"name": {"Jo"}, "email_address": {email}, "message": {"Do you ship to Canada?"}})
	mustContain(t, c.follow(p), "Thank you for your message.")
	var n int
	if err := e.dbA.QueryRow(context.Background(), `SELECT count(*) FROM chat_message WHERE message = 'Do you ship to Canada?' AND member_id IS NOT NULL`).Scan(&n); err != nil || n != 1 {
		t.Errorf("chat messages = %d, %v", n, err)
	}

	// Unsubscribe from a mail link.
	var token string
	if err := e.dbA.QueryRow(context.Background(), `SELECT m.email_unsubscribe_string_signed FROM member m JOIN account a ON a.id = m.account_id WHERE a.username = $1`, user).Scan(&token); err != nil {
		t.Fatal(err)
	}
	anon := e.client(t, hostA)
	mustContain(t, anon.get("/account/email-unsubscribe?token="+url.QueryEscape(token)), "Yes, remove me", email[:4]+"*")
	p = anon.post("/account/email-unsubscribe", url.Values{"token": {token}})
	mustContain(t, p, "is unsubscribed", "Would you tell us why?")
	newToken := between(p.body, `name="token" value="`, `"`)
	if newToken == "" || newToken == token {
		t.Fatalf("no new token on the reasons form")
	}
	mustContain(t, anon.post("/account/email-unsubscribe", url.Values{"action": {"why"}, "token": {newToken}, "spam": {"true"}}), "Thank you for telling us.")
	mustContain(t, anon.get("/account/email-unsubscribe?token="+url.QueryEscape(newToken)), "already unsubscribed")

	// The cookie notice is dismissed without script.
	fresh := e.client(t, hostA)
	mustContain(t, fresh.get("/about"), `id="cookie-notice"`)
	p = fresh.post("/cookie-notice", url.Values{"next": {"/about"}})
	if p.location() != "/about" || strings.Contains(fresh.get("/about").body, `id="cookie-notice"`) {
		t.Errorf("cookie notice: %d %q", p.status, p.location())
	}

	// A form without the CSRF token is refused; so is one over the limit.
	p = fresh.post("/contact", url.Values{"csrfmiddlewaretoken": {"x"}, "name": {"Jo"}, "email_address": {email}, "message": {"hi"}})
	if p.status != http.StatusForbidden {
		t.Errorf("form with a wrong token = %d", p.status)
	}
	limited := e.client(t, hostB)
	limited.get("/contact")
	var last page
	for range 4 { // the harness allows 3 chat messages an hour
		last = limited.post("/contact", url.Values{"name": {"Jo"}, "email_address": {"x@example.com"}, "message": {"hi"}})
	}
	if last.status != http.StatusForbidden || !strings.Contains(last.body, "too many attempts") || !strings.HasPrefix(last.header.Get("Content-Type"), "text/html") {
		t.Errorf("over the chat limit = %d %s %s", last.status, last.header.Get("Content-Type"), snippet(mainOf(last.body)))
	}
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		return s[:j]
	}
	return ""
}
