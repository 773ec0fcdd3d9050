package faults

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/server"
)

// visitor is a browser of the test: its cookies go with every request.
type visitor struct {
	p       *plane
	slug    string
	cookies map[string]string
}

// do sends a request as the visitor (a POST carries a form and the CSRF
// token) and returns the status and the JSON body.
func (v *visitor) do(t *testing.T, method, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "http://"+v.p.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host(v.slug)
	for k, c := range v.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: c})
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-CSRFToken", v.cookies["csrftoken"])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(v.cookies, c.Name)
		} else {
			v.cookies[c.Name] = c.Value
		}
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// loggedIn reads /user/logged-in's logged_in.
func (v *visitor) loggedIn(t *testing.T) (int, any) {
	t.Helper()
	st, body := v.do(t, "GET", "/user/logged-in", nil)
	return st, body["logged_in"]
}

// redisFault is a plane with the accounts app, a signed-in member and an
// anonymous visitor, for the Redis outages.
type redisFault struct {
	p             *plane
	member, anon  *visitor
	failOpenCount func() float64
}

const redisFaultPassword = "Quiet!Harbour#Lamp42"

func newRedisFault(t *testing.T, timeout time.Duration) *redisFault {
	t.Helper()
	p := newPlane(t, planeOptions{Tenants: []string{"shop"}, Accounts: true, Apps: []server.App{dbApp{}}, RequestTimeout: timeout})
	pw := redisFaultPassword
	member := &visitor{p: p, slug: "shop", cookies: map[string]string{}}
	member.do(t, "GET", "/user/token", nil)
	if st, body := member.do(t, "POST", "/user/create-account", url.Values{
		"firstname": {"Fault"}, "lastname": {"Test"}, "username": {"faultuser"},
		"email_address": {"fault@example.com"}, "password": {pw}, "confirm_password": {pw},
		"newsletter": {"false"}, "remember_me": {"false"},
	}); st != 200 || body["create_account"] != "true" {
		t.Fatalf("create-account: %d %v", st, body)
	}
	if st, in := member.loggedIn(t); st != 200 || in != true {
		t.Fatalf("logged-in before the outage: %d %v", st, in)
	}
	anon := &visitor{p: p, slug: "shop", cookies: map[string]string{}}
	anon.do(t, "GET", "/user/token", nil)
	failOpen := func() float64 {
		families, err := p.metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			if mf.GetName() == "swa_ratelimit_fail_open_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	return &redisFault{p: p, member: member, anon: anon, failOpenCount: failOpen}
}

func (f *redisFault) login(t *testing.T, v *visitor) (int, map[string]any) {
	t.Helper()
	return v.do(t, "POST", "/user/login", url.Values{"username": {"faultuser"}, "password": {redisFaultPassword}, "remember_me": {"false"}})
}

// outage checks the answers while Redis does not serve: an anonymous
// visitor's reads and a database route answer 200, the member reads as
// signed out, the login rate limit fails open and signing in answers 503
// service-unavailable (Redis, not the request, ran out of time).
func (f *redisFault) outage(t *testing.T) {
	t.Helper()
	before := f.failOpenCount()
	start := time.Now()
	if st, body := f.anon.do(t, "GET", "/user/token", nil); st != 200 {
		t.Errorf("anonymous token while Redis is down: %d %v", st, body)
	}
	if st, in := f.anon.loggedIn(t); st != 200 || in != false {
		t.Errorf("anonymous logged-in while Redis is down: %d %v", st, in)
	}
	if r := f.p.call("GET", "shop", "/faults/read", nil, nil); r.status != 200 {
		t.Errorf("database read while Redis is down: %d %s", r.status, r.code)
	}
	st, in := f.member.loggedIn(t)
	t.Logf("signed-in member's logged-in while Redis is down: %d logged_in=%v", st, in)
	if st != 200 {
		t.Errorf("member's logged-in while Redis is down: %d", st)
	}
	st, body := f.login(t, f.anon)
	t.Logf("login while Redis is down: %d %v", st, body)
	if st != 503 || body["error"] != "service-unavailable" {
		t.Errorf("login while Redis is down: %d %v, want 503", st, body)
	}
	if n := f.failOpenCount() - before; n < 1 {
		t.Errorf("the login rate limit did not fail open (%v counted)", n)
	}
	t.Logf("outage answers took %v in all", time.Since(start).Round(time.Millisecond))
}

// recovery waits for the member to read as signed in again, without any
// restart, and signs in.
func (f *redisFault) recovery(t *testing.T) {
	t.Helper()
	back := time.Now()
	var recovered time.Duration
	for time.Since(back) < 5*time.Second {
		if st, in := f.member.loggedIn(t); st == 200 && in == true {
			recovered = time.Since(back)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recovered == 0 {
		t.Fatal("the member's session was not read again within 5s of Redis coming back")
	}
	t.Logf("member signed in again %v after Redis came back", recovered.Round(time.Millisecond))
	if st, body := f.login(t, f.anon); st != 200 || body["login"] != "true" {
		t.Errorf("login after Redis came back: %d %v", st, body)
	}
}

// TestRedisDown cuts Redis (the proxy stops: connections closed, new ones
// refused) under a signed-in member and an anonymous visitor. While it is
// down: the login route's rate limit fails open (counted in
// swa_ratelimit_fail_open_total) and signing in, which must write a
// session, answers 503, never 500; an anonymous visitor's reads and a
// database route still answer 200, and the member reads as signed out
// (the session cannot be read). When Redis is back, without any restart,
// the member is signed in again and signing in works.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	f := newRedisFault(t, 0)
	f.p.redisProxy.Stop()
	f.outage(t)
	if err := f.p.redisProxy.Start(); err != nil {
		t.Fatal(err)
	}
	f.recovery(t)
}

// TestRedisHangs makes Redis silent (connections accepted, nothing ever
// answered: a stopped host or a path that drops packets) with the same
// checks as TestRedisDown under a request deadline of 3 s. Each Redis call
// must end at its own bound (200 ms for a rate limit, 500 ms for a session)
// and the request answer as designed before its deadline; a client that
// waited its socket's ReadTimeout (3 s, retried) instead would answer
// every request 503 request-timeout, the anonymous ones included.
func TestRedisHangs(t *testing.T) {
	t.Parallel()
	f := newRedisFault(t, 3*time.Second)
	addToxic(t, f.p.redisProxy, `{"name":"silent","type":"timeout","stream":"downstream","attributes":{"timeout":0}}`)
	f.outage(t)
	if err := f.p.redisProxy.Toxics.RemoveToxic(context.Background(), "silent"); err != nil {
		t.Fatal(err)
	}
	f.recovery(t)
}
