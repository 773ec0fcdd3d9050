package ratelimit_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/server"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want ratelimit.Rate
		bad  bool
	}{
		{in: "10/h", want: ratelimit.Rate{N: 10, Window: time.Hour}},
		{in: "5/m", want: ratelimit.Rate{N: 5, Window: time.Minute}},
		{in: "1/s", want: ratelimit.Rate{N: 1, Window: time.Second}},
		{in: "3/d", want: ratelimit.Rate{N: 3, Window: 24 * time.Hour}},
		{in: "100/2h", want: ratelimit.Rate{N: 100, Window: 2 * time.Hour}},
		{in: " 7/H ", want: ratelimit.Rate{N: 7, Window: time.Hour}},
		{in: "off", want: ratelimit.Rate{}},
		{in: "OFF", want: ratelimit.Rate{}},
		{in: "", bad: true},
		{in: "10", bad: true},
		{in: "x/h", bad: true},
		{in: "0/h", bad: true},
		{in: "-1/h", bad: true},
		{in: "10/", bad: true},
		{in: "10/w", bad: true},
		{in: "10/0h", bad: true},
		{in: "10/xh", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ratelimit.ParseRate(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseRate(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

type mount func(r fiber.Router)

func (m mount) Mount(r fiber.Router) { m(r) }

type fixture struct {
	app    *fiber.App
	rdb    *redis.Client
	prefix string
	reg    *prometheus.Registry
	a      *directory.Tenant
}

const (
	hostA   = "a.rl.test"
	hostB   = "b.rl.test"
	hostOff = "off.rl.test"
)

func newDirectory(t *testing.T) *directory.Directory {
	t.Helper()
	reg := pgtest.NewPool(t, migrations.Platform)
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "ra", Domains: []string{hostA}})
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "rb", Domains: []string{hostB},
		Settings: directory.Settings{RateLimits: map[string]string{"login": "2/h", "create_account": "nonsense"}}})
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "roff", Domains: []string{hostOff},
		Settings: directory.Settings{RateLimits: map[string]string{"login": "off"}}})
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "example.invalid"})
	if err := dir.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newApp(dir *directory.Directory, l *ratelimit.Limiter) *fiber.App {
	ok := func(c *fiber.Ctx) error { return c.SendString("ran") }
	return server.New(server.Options{Directory: dir, TrustedProxies: []string{"0.0.0.0"}, Apps: []server.App{mount(func(r fiber.Router) {
		r.Post("/user/login", l.Handler("login", ratelimit.ByClientIP), ok)
		r.Get("/user/login", l.Handler("login", ratelimit.ByClientIP), ok)
		r.Post("/user/create-account", l.Handler("create_account", ratelimit.ByClientIP), ok)
		r.Post("/user/reset-password", l.Handler("reset_password", ratelimit.ByFormValue("username")), ok)
	})}})
}

func newFixture(t *testing.T, opts ratelimit.Options) *fixture {
	t.Helper()
	dir := newDirectory(t)
	rdb, prefix := pgtest.Redis(t)
	reg := prometheus.NewRegistry()
	opts.Redis, opts.Prefix, opts.Metrics = rdb, prefix, reg
	return &fixture{app: newApp(dir, ratelimit.New(opts)), rdb: rdb, prefix: prefix, reg: reg, a: dir.BySlug("ra")}
}

// post sends one request and returns its status; the body of a 403 must be
// the rate_limited error.
func post(t *testing.T, app *fiber.App, method, host, path, clientIP string, form url.Values) int {
	t.Helper()
	hr := httptest.NewRequest(method, "http://"+host+path, strings.NewReader(form.Encode()))
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if clientIP != "" {
		hr.Header.Set("X-Forwarded-For", clientIP)
	}
	res, err := app.Test(hr, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	switch res.StatusCode {
	case 200:
		if string(b) != "ran" {
			t.Fatalf("handler did not run: %q", b)
		}
	case 403:
		var e struct{ Error string }
		if json.Unmarshal(b, &e); e.Error != "rate_limited" {
			t.Fatalf("403 body %q: want rate_limited", b)
		}
	default:
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	return res.StatusCode
}

// statuses sends n requests and returns the count of 200s before the first 403
// and the total of 403s.
func statuses(t *testing.T, n int, send func() int) (passed, rejected int) {
	t.Helper()
	for range n {
		if send() == 200 {
			if rejected > 0 {
				t.Fatal("a request passed after a rejection in the same window")
			}
			passed++
		} else {
			rejected++
		}
	}
	return passed, rejected
}

func TestLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ratelimit.Options{})
	form := url.Values{}
	login := func(host, ip string) func() int {
		return func() int { return post(t, f.app, "POST", host, "/user/login", ip, form) }
	}
	reset := func(user string) func() int {
		return func() int {
			return post(t, f.app, "POST", hostA, "/user/reset-password", "10.0.0.9", url.Values{"username": {user}})
		}
	}
	tests := []struct {
		name           string
		n              int
		send           func() int
		passed, reject int
	}{
		{"11th login from one IP is refused", 12, login(hostA, "10.0.0.1"), 10, 2},
		{"another IP has its own counter", 10, login(hostA, "10.0.0.2"), 10, 0},
		{"the same IP on another tenant: own counter, tenant override 2/h", 4, login(hostB, "10.0.0.1"), 2, 2},
		{"override off", 30, login(hostOff, "10.0.0.1"), 30, 0},
		{"create_account 5/h; a bad override keeps the default", 7, func() int {
			return post(t, f.app, "POST", hostB, "/user/create-account", "10.0.0.3", form)
		}, 5, 2},
		{"reset by username", 6, reset("alice"), 5, 1},
		{"another username", 5, reset("bob"), 5, 0},
		{"missing username is one shared bucket", 6, reset(""), 5, 1},
		{"GET is not counted", 20, func() int { return post(t, f.app, "GET", hostA, "/user/login", "10.0.0.4", form) }, 20, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			passed, rejected := statuses(t, tc.n, tc.send)
			if passed != tc.passed || rejected != tc.reject {
				t.Errorf("passed %d, rejected %d; want %d, %d", passed, rejected, tc.passed, tc.reject)
			}
		})
	}

	// The counter sits at the documented key and counts rejected requests too.
	win := time.Now().Unix() / 3600
	key := f.prefix + strconv.FormatInt(f.a.ID, 10) + ":rl:login:10.0.0.1:" + strconv.FormatInt(win, 10)
	if n, err := f.rdb.Get(context.Background(), key).Int(); err != nil || n != 12 {
		t.Errorf("counter %s = %d, %v; want 12", key, n, err)
	}
	// 2 + 2 + 2 + 1 + 1 rejections above.
	if got := counterSum(t, f.reg, "swa_ratelimit_rejected_total"); got != 8 {
		t.Errorf("rejected metric = %v, want 8", got)
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ratelimit.Options{Disabled: true})
	passed, rejected := statuses(t, 15, func() int {
		return post(t, f.app, "POST", hostA, "/user/login", "10.0.0.1", url.Values{})
	})
	if passed != 15 || rejected != 0 {
		t.Errorf("disabled limiter: passed %d, rejected %d", passed, rejected)
	}
	if keys, _ := f.rdb.Keys(context.Background(), f.prefix+"*").Result(); len(keys) != 0 {
		t.Errorf("disabled limiter wrote %v", keys)
	}
}

func TestFailOpen(t *testing.T) {
	t.Parallel()
	dir := newDirectory(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	stopped, _ := pgtest.Redis(t)
	stoppedClient := redis.NewClient(stopped.Options())
	stoppedClient.Close()

	tests := []struct {
		name string
		rdb  *redis.Client
	}{
		{"nothing listening", redis.NewClient(&redis.Options{Addr: closedAddr, MaxRetries: -1})},
		{"client closed", stoppedClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			l := ratelimit.New(ratelimit.Options{Redis: tc.rdb, Prefix: "x:", Metrics: reg})
			app := newApp(dir, l)
			passed, rejected := statuses(t, 12, func() int {
				return post(t, app, "POST", hostA, "/user/login", "10.0.0.1", url.Values{})
			})
			if passed != 12 || rejected != 0 {
				t.Errorf("passed %d, rejected %d: want every request through", passed, rejected)
			}
			if n := counterSum(t, reg, "swa_ratelimit_fail_open_total"); n != 12 {
				t.Errorf("fail-open count %v, want 12", n)
			}
		})
	}
}

// counterSum adds up every series of a counter.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// Two replicas (limiters sharing Redis) hit by concurrent logins from one
// address, all released at once, let exactly the limit through between
// them: the count lives in Redis, not in either process.
func TestConcurrentRequestsAcrossReplicasShareOneLimit(t *testing.T) {
	t.Parallel()
	dir := newDirectory(t)
	rdb, prefix := pgtest.Redis(t)
	// A generous Redis timeout: thirty connections dialled at once under
	// -race can take longer than the default, and this test is about
	// counting, not failing open (each limiter's metric says if it did).
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	replicas := make([]*fiber.App, len(regs))
	for i, reg := range regs {
		replicas[i] = newApp(dir, ratelimit.New(ratelimit.Options{Redis: rdb, Prefix: prefix, Timeout: 10 * time.Second, Metrics: reg}))
	}
	const n, limit = 30, 10 // login's default is 10/h
	type answer struct {
		replica, status int
		err             error
	}
	start := make(chan struct{})
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			<-start
			hr := httptest.NewRequest("POST", "http://"+hostA+"/user/login", strings.NewReader(""))
			hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			hr.Header.Set("X-Forwarded-For", "10.9.9.9")
			res, err := replicas[i%2].Test(hr, -1)
			if err != nil {
				answers <- answer{replica: i % 2, err: err}
				return
			}
			res.Body.Close()
			answers <- answer{replica: i % 2, status: res.StatusCode}
		}()
	}
	close(start)
	passed, rejected := 0, 0
	answered := [2]int{}
	for range n {
		a := <-answers
		switch {
		case a.err != nil:
			t.Errorf("replica %d: %v", a.replica, a.err)
		case a.status == 200:
			passed++
		case a.status == 403:
			rejected++
		default:
			t.Errorf("replica %d answered %d", a.replica, a.status)
		}
		answered[a.replica]++
	}
	if passed != limit || rejected != n-limit {
		t.Errorf("passed %d, rejected %d; want %d, %d across both replicas", passed, rejected, limit, n-limit)
	}
	if answered[0] != n/2 || answered[1] != n/2 {
		t.Errorf("replicas answered %v, want %d each", answered, n/2)
	}
	for i, reg := range regs {
		if got := counterSum(t, reg, "swa_ratelimit_fail_open_total"); got != 0 {
			t.Errorf("replica %d failed open %v times", i, got)
		}
	}
}
