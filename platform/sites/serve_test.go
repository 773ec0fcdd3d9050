package sites_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/sites"
)

var page = func(s string) string { return "<html><body>" + repeat(s+" ", 300) + "</body></html>" }

// The site is served as the original frontend's CDN served it, with
// validators, cache lifetimes and negotiated encodings, and hands on what
// it does not serve.
func TestServe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	js := "console.log('" + repeat("app ", 300) + "');"
	e.deploy(t, e.acme, files(t,
		"index.html", page("home"),
		"about.html", page("about"),
		"docs/index.html", page("docs"),
		"my docs/index.html", page("spaced"),
		"assets/app.3f2a9c1e.js", js,
		"assets/site.css", "body{color:red}"+repeat(" ", 400),
		"logo.png", "\x89PNG not really",
		"error.html", page("oops"),
	))
	const host = "www.acme.test"

	t.Run("paths", func(t *testing.T) {
		for _, tc := range []struct {
			path         string
			wantStatus   int
			wantBody     string
			wantLocation string
		}{
			{"/", 200, "home", ""},
			{"/index.html", 200, "home", ""},
			{"/about", 200, "about", ""},
			{"/about.html", 200, "about", ""},
			{"/docs", 301, "", "/docs/"},
			{"/docs?x=1", 301, "", "/docs/?x=1"},
			{"/my%20docs", 301, "", "/my%20docs/"},
			{"/my%20docs/", 200, "spaced", ""},
			{"/docs/", 200, "docs", ""},
			{"/missing", 404, "oops", ""},
			{"/assets/", 404, "oops", ""},
			{"/%61bout", 200, "about", ""},
			{"/docs/../about", 200, "about", ""},
		} {
			r := e.mustGet(t, host, tc.path)
			if r.status != tc.wantStatus {
				t.Errorf("GET %s: status %d, want %d", tc.path, r.status, tc.wantStatus)
			}
			if !strings.Contains(r.body, tc.wantBody) {
				t.Errorf("GET %s: body %.40q, want it to contain %q", tc.path, r.body, tc.wantBody)
			}
			if loc := r.header.Get("Location"); loc != tc.wantLocation {
				t.Errorf("GET %s: Location %q, want %q", tc.path, loc, tc.wantLocation)
			}
		}
	})

	t.Run("headers", func(t *testing.T) {
		for _, tc := range []struct{ path, ctype, cache string }{
			{"/", "text/html; charset=utf-8", "no-cache"},
			{"/assets/app.3f2a9c1e.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
			{"/assets/site.css", "text/css; charset=utf-8", "public, max-age=3600"},
			{"/logo.png", "image/png", "public, max-age=3600"},
			{"/missing", "text/html; charset=utf-8", "no-cache"},
		} {
			r := e.mustGet(t, host, tc.path)
			if got := r.header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.ctype)
			}
			if got := r.header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.cache)
			}
		}
	})

	t.Run("conditional", func(t *testing.T) {
		r := e.mustGet(t, host, "/assets/site.css")
		etag := r.header.Get("ETag")
		if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
			t.Fatalf("ETag %q", etag)
		}
		for _, inm := range []string{etag, `W/` + etag, `"nope", ` + etag, "*"} {
			r := e.mustGet(t, host, "/assets/site.css", "If-None-Match", inm)
			if r.status != http.StatusNotModified || len(r.raw) != 0 {
				t.Errorf("If-None-Match %s: status %d, %d body bytes; want 304 and none", inm, r.status, len(r.raw))
			}
		}
		if r := e.mustGet(t, host, "/assets/site.css", "If-None-Match", `"other"`); r.status != http.StatusOK {
			t.Errorf("If-None-Match of another tag: status %d, want 200", r.status)
		}
		// An encoded variant's tag revalidates too.
		br := e.mustGet(t, host, "/assets/site.css", "Accept-Encoding", "br")
		if r := e.mustGet(t, host, "/assets/site.css", "Accept-Encoding", "br", "If-None-Match", br.header.Get("ETag")); r.status != http.StatusNotModified {
			t.Errorf("If-None-Match of the brotli tag: status %d, want 304", r.status)
		}
	})

	t.Run("encodings", func(t *testing.T) {
		identity := e.mustGet(t, host, "/assets/app.3f2a9c1e.js")
		for _, tc := range []struct{ accept, want string }{
			{"", ""},
			{"gzip", "gzip"},
			{"gzip, deflate, br", "br"},
			{"br;q=0, gzip", "gzip"},
			{"identity", ""},
			{"*", "br"},
			{"gzip;q=0", ""},
		} {
			r := e.mustGet(t, host, "/assets/app.3f2a9c1e.js", "Accept-Encoding", tc.accept)
			if got := r.header.Get("Content-Encoding"); got != tc.want {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tc.accept, got, tc.want)
			}
			if r.body != js {
				t.Errorf("Accept-Encoding %q: decoded body differs from the file", tc.accept)
			}
			if tc.want != "" && len(r.raw) >= len(identity.raw) {
				t.Errorf("Accept-Encoding %q: %d bytes sent, no fewer than the %d of identity", tc.accept, len(r.raw), len(identity.raw))
			}
			if !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q lacks Accept-Encoding", r.header.Get("Vary"))
			}
		}
		// A file too small or not compressible is always sent as it is.
		if r := e.mustGet(t, host, "/logo.png", "Accept-Encoding", "br, gzip"); r.header.Get("Content-Encoding") != "" {
			t.Errorf("logo.png sent with Content-Encoding %q", r.header.Get("Content-Encoding"))
		}
	})

	t.Run("head", func(t *testing.T) {
		r, err := e.get(t, http.MethodHead, host, "/about")
		if err != nil || r.status != http.StatusOK || len(r.raw) != 0 || r.header.Get("ETag") == "" {
			t.Errorf("HEAD /about: %v, status %d, %d body bytes, ETag %q", err, r.status, len(r.raw), r.header.Get("ETag"))
		}
	})

	t.Run("handed on", func(t *testing.T) {
		if r := e.mustGet(t, host, "/user/logged-in"); r.body != "api" {
			t.Errorf("API route answered %q", r.body)
		}
		for _, p := range []string{"/user/other", "/order/products", "/clientevent/pageview", "/admin"} {
			if r := e.mustGet(t, host, p); r.body != "storefront" {
				t.Errorf("%s under an API prefix answered %.30q by the site, want it handed on", p, r.body)
			}
		}
		r, err := e.get(t, http.MethodPost, host, "/about")
		if err != nil || r.body != "storefront" {
			t.Errorf("POST /about: %v %q, want it handed on", err, r.body)
		}
	})

	t.Run("other tenant", func(t *testing.T) {
		for _, h := range []string{"www.other.test", "other.example.test"} {
			for _, p := range []string{"/", "/about", "/assets/site.css"} {
				if r := e.mustGet(t, h, p); r.body != "storefront" {
					t.Errorf("%s%s answered %.30q, want the other tenant's storefront", h, p, r.body)
				}
			}
		}
	})

	t.Run("every host in mode replace", func(t *testing.T) {
		for _, h := range []string{"shop.acme.test", "acme.example.test", "WWW.ACME.TEST:8000"} {
			if r := e.mustGet(t, h, "/about"); !strings.Contains(r.body, "about") {
				t.Errorf("%s/about answered %.30q, want the site", h, r.body)
			}
		}
	})
}

// A site without error.html answers a plain 404.
func TestServeWithoutErrorPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.deploy(t, e.other, files(t, "index.html", "<h1>other</h1>"))
	r := e.mustGet(t, "www.other.test", "/nothing-here")
	if r.status != http.StatusNotFound || !strings.Contains(r.body, "404 page not found") || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("status %d, type %q, body %q; want a plain 404", r.status, r.header.Get("Content-Type"), r.body)
	}
	if r := e.mustGet(t, "www.acme.test", "/"); r.body != "storefront" {
		t.Errorf("acme, which has no site, answered %q", r.body)
	}
}

// In mode domain the site answers on its domain only, the tenant's other
// hosts keep the storefront, and the site's origin may call the API.
func TestModeDomain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	if _, err := e.store.SetMode(ctx, e.acme, sites.ModeDomain, "www.other.test", nil); err == nil {
		t.Fatal("SetMode on another tenant's domain succeeded")
	}
	if _, err := e.store.SetMode(ctx, e.acme, "sideways", "", nil); err == nil {
		t.Fatal("SetMode with an unknown mode succeeded")
	}
	site, err := e.store.SetMode(ctx, e.acme, sites.ModeDomain, "www.acme.test", nil)
	if err != nil || site.Mode != sites.ModeDomain || site.Domain == nil || *site.Domain != "www.acme.test" {
		t.Fatalf("SetMode: %+v, %v", site, err)
	}
	e.deploy(t, e.acme, files(t, "index.html", page("site")))
	if r := e.mustGet(t, "www.acme.test", "/"); !strings.Contains(r.body, "site") {
		t.Errorf("www.acme.test answered %.30q, want the site", r.body)
	}
	for _, h := range []string{"shop.acme.test", "acme.example.test"} {
		if r := e.mustGet(t, h, "/"); r.body != "storefront" {
			t.Errorf("%s answered %.30q, want the storefront", h, r.body)
		}
	}
	tn := e.dir.ByID(e.acme)
	for origin, want := range map[string]bool{
		"https://www.acme.test": true, "http://www.acme.test:8000": true,
		"https://shop.acme.test": false, "https://www.acme.test.evil.test": false, "ftp://www.acme.test": false,
	} {
		if got := tn.AllowsOrigin(origin); got != want {
			t.Errorf("AllowsOrigin(%s) = %v, want %v", origin, got, want)
		}
	}
	// The CORS headers follow from it.
	r := e.mustGet(t, "shop.acme.test", "/user/logged-in", "Origin", "https://www.acme.test")
	if r.header.Get("Access-Control-Allow-Origin") != "https://www.acme.test" {
		t.Errorf("API call from the site's origin: Access-Control-Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
	}
	// Back to replace: every host serves it, the domain is no longer special.
	if _, err := e.store.SetMode(ctx, e.acme, sites.ModeReplace, "", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.dir.ByID(e.acme).Site.Domain != "" {
		if time.Now().After(deadline) {
			t.Fatal("the directory did not follow the mode change")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := e.mustGet(t, "shop.acme.test", "/"); !strings.Contains(r.body, "site") {
		t.Errorf("shop.acme.test in mode replace answered %.30q", r.body)
	}
}

// Deploying v2 while clients download continuously: every response is
// wholly one version, and once a client has seen v2 it never sees v1
// again, so no page ever pairs with the other version's script.
func TestDeployWhileDownloading(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	bundle := func(v string) *sites.Bundle {
		return files(t, "index.html", page("version-"+v), "app.js", "var v='"+v+"';"+repeat("/*"+v+"*/", 20000))
	}
	e.deploy(t, e.acme, bundle("1"))

	const clients = 4
	var (
		stop    atomic.Bool
		sawV1   sync.WaitGroup
		wg      sync.WaitGroup
		errs    = make(chan string, clients*4)
		counts  [clients][3]atomic.Int64 // pairs of v1, v2, per client
		started = make(chan struct{})
	)
	sawV1.Add(clients)
	version := func(body string) string {
		switch {
		case strings.Contains(body, "version-1") && !strings.Contains(body, "version-2"),
			strings.HasPrefix(body, "var v='1'") && !strings.Contains(body, "/*2*/"):
			return "1"
		case strings.Contains(body, "version-2") && !strings.Contains(body, "version-1"),
			strings.HasPrefix(body, "var v='2'") && !strings.Contains(body, "/*1*/"):
			return "2"
		}
		return "mixed"
	}
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-started
			seen, first := "1", true
			defer func() {
				if first { // failed before its first pair: release the deploy
					sawV1.Done()
				}
			}()
			accept := []string{"", "gzip", "br"}[i%3]
			for n := 0; !stop.Load(); n++ {
				var pair [2]string
				for j, p := range []string{"/", "/app.js"} {
					r, err := e.get(t, http.MethodGet, "www.acme.test", p, "Accept-Encoding", accept)
					if err != nil || r.status != http.StatusOK {
						errs <- "GET " + p + ": " + errString(err) + " status " + strconv.Itoa(r.status)
						return
					}
					pair[j] = version(r.body)
				}
				for _, v := range pair {
					switch {
					case v == "mixed":
						errs <- "a response mixed both versions"
						return
					case v < seen:
						errs <- "version 1 served after version 2"
						return
					}
					seen = v
				}
				if pair[0] == "1" {
					counts[i][1].Add(1)
				} else if pair[1] == "2" {
					counts[i][2].Add(1)
				}
				if first {
					first = false
					sawV1.Done()
				}
			}
		}()
	}
	close(started)
	sawV1.Wait() // every client is downloading before the deploy begins
	v2 := e.deploy(t, e.acme, bundle("2"))
	// Keep downloading until every client has had v2 a few times.
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for i := range clients {
			if counts[i][2].Load() < 3 {
				done = false
			}
		}
		if done || time.Now().After(deadline) || len(errs) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range clients {
		if v1, v2 := counts[i][1].Load(), counts[i][2].Load(); v1 == 0 || v2 < 3 {
			t.Errorf("client %d saw v1 %d and v2 %d times; want both", i, v1, v2)
		}
	}
	if v2.Number != 2 {
		t.Errorf("second deploy is version %d", v2.Number)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
