package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// browserPage is the test page: the StartupWebApp frontend's cross-origin
// pattern (contract §1.5-§1.8, §13.2) in plain fetch calls. Every call is
// credentialed; every POST is form-encoded and carries X-CSRFToken read from
// document.cookie at send time, which makes the browser preflight it. Each
// step writes one line into #out; "done" ends a run that did not crash.
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>cross-origin</title></head>
<body><pre id="out"></pre>
<script>
const api = %s, username = %s;
const out = document.getElementById('out');
const log = line => { out.textContent += line + '\n'; };
const cookie = name => {
  const c = document.cookie.split('; ').find(c => c.startsWith(name + '='));
  return c ? c.slice(name.length + 1) : '';
};
async function call(step, method, path, form, csrf) {
  const init = {method, credentials: 'include', headers: {}};
  if (form) init.body = new URLSearchParams(form);
  if (csrf) init.headers['X-CSRFToken'] = cookie('csrftoken');
  try {
    const r = await fetch(api + path, init);
    const text = await r.text();
    let body = {};
    try { body = JSON.parse(text); } catch (e) {}
    return {status: r.status, body};
  } catch (e) {
    log(step + ': failed ' + e);
    return null;
  }
}
async function main() {
  let r = await call('token', 'GET', '/user/token');
  if (r) log('token: ' + r.status);
  const token = cookie('csrftoken');
  log('csrftoken: ' + (/^[A-Za-z0-9]{32}$/.test(token) ? 'readable' : 'missing from ' + JSON.stringify(document.cookie)));
  r = await call('logged-in', 'GET', '/user/logged-in');
  if (r) log('logged-in: ' + r.status + ' logged_in=' + r.body.logged_in + ' cart_item_count=' + r.body.cart_item_count);
  r = await call('cart-add', 'POST', '/order/cart-add-product-sku', {sku_id: '1', quantity: '1'}, true);
  if (r) log('cart-add: ' + r.status + ' ' + r.body.cart_add_product_sku);
  r = await call('create-account', 'POST', '/user/create-account', {
    firstname: 'Brow', lastname: 'Ser', username, email_address: username + '@example.com',
    password: 'Xq7!browser#Pw', confirm_password: 'Xq7!browser#Pw', newsletter: 'false', remember_me: 'true'}, true);
  if (r) log('create-account: ' + r.status + ' ' + r.body.create_account);
  const rotated = cookie('csrftoken');
  log('csrftoken after sign-up: ' + (rotated && rotated !== token ? 'rotated' : 'not rotated'));
  log('sessionid: ' + (cookie('sessionid') ? 'readable' : 'hidden'));
  r = await call('logged-in again', 'GET', '/user/logged-in');
  if (r) log('logged-in again: ' + r.status + ' logged_in=' + r.body.logged_in + ' cart_item_count=' + r.body.cart_item_count);
  r = await call('without csrf header', 'POST', '/order/cart-add-product-sku', {sku_id: '1', quantity: '1'}, false);
  if (r) log('without csrf header: ' + r.status);
  log('done');
}
main().catch(e => log('page error: ' + e));
</script></body></html>
`

// TestBrowserCrossOriginFlow runs the frontend's cross-origin pattern in
// headless Chromium: a page on http://localhost:<port> calls the data plane
// on http://localhost:<data port>, the way the unchanged frontend on :8080
// calls :8000. Only a real browser enforces CORS on credentialed fetches,
// preflights the X-CSRFToken POSTs, applies SameSite across ports and hides
// HttpOnly cookies from document.cookie. A second page, from an origin the
// tenant does not trust, shows that the browser then refuses every answer.
func TestBrowserCrossOriginFlow(t *testing.T) {
	t.Parallel()
	chromium := pgtest.Require(t, "SWA_CHROMIUM")
	h := newDevHarness(t)
	// Rate-limit windows are keyed by tenant id and client IP in the shared
	// Redis; every harness's startupwebapp is tenant 1 on 127.0.0.1, so the
	// 5/h sign-up limit would be spent by earlier runs. CSRF is not affected.
	h.env["SWA_RATE_LIMITS"] = "off"
	h.start()

	_, dataPort, err := net.SplitHostPort(strings.TrimPrefix(h.urls.Data, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	apiBase := "http://localhost:" + dataPort

	trusted := servePage(t, apiBase)
	code, body := h.api(http.MethodPost, "/v1/tenants/startupwebapp/origins", map[string]string{"origin": trusted})
	if code != http.StatusCreated || !strings.Contains(body, `"`+trusted+`"`) {
		t.Fatalf("add origin %s = %d %s", trusted, code, body)
	}
	waitForOrigin(t, h, dataPort, trusted)
	untrusted := servePage(t, apiBase)

	t.Run("trusted origin", func(t *testing.T) {
		before := countPreflights(h.logText())
		lines, report := runBrowser(t, chromium, trusted+"/")
		want := []string{
			"token: 200",
			"csrftoken: readable",
			"logged-in: 200 logged_in=false cart_item_count=0",
			"cart-add: 200 success",
			"create-account: 200 true",
			"csrftoken after sign-up: rotated",
			"sessionid: hidden",
			"logged-in again: 200 logged_in=true cart_item_count=1",
			"without csrf header: 403",
			"done",
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("page reported:\n%s\nwant:\n%s\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"), report)
		}
		// The X-CSRFToken POSTs reached the data plane as preflights first.
		if n := countPreflights(h.logText()) - before; n < 2 {
			t.Fatalf("data plane answered %d preflights, want at least 2\n%s", n, report)
		}
	})

	t.Run("untrusted origin", func(t *testing.T) {
		lines, report := runBrowser(t, chromium, untrusted+"/")
		for _, step := range []string{"token", "logged-in", "cart-add", "create-account", "logged-in again", "without csrf header"} {
			if !containsPrefix(lines, step+": failed ") {
				t.Fatalf("step %q was not refused by the browser; page reported:\n%s\n%s", step, strings.Join(lines, "\n"), report)
			}
		}
		if !containsPrefix(lines, "done") {
			t.Fatalf("the page did not finish:\n%s", report)
		}
	})
}

// servePage serves browserPage on 127.0.0.1 and returns its origin as the
// browser names it, http://localhost:<port>: the frontend picks its API base
// by hostname (§13.2), and cookies are same-site only between localhosts.
func servePage(t *testing.T, apiBase string) string {
	t.Helper()
	api, _ := json.Marshal(apiBase)
	user, _ := json.Marshal(pgtest.RandomName("browser"))
	page := fmt.Sprintf(browserPage, api, user)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return "http://localhost:" + port
}

// waitForOrigin waits until the data plane, which learns of registry changes
// by NOTIFY, answers a preflight from origin.
func waitForOrigin(t *testing.T, h *devHarness, dataPort, origin string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequest(http.MethodOptions, h.urls.Data+"/order/cart-add-product-sku", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "localhost:" + dataPort
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		req.Header.Set("Access-Control-Request-Headers", "x-csrftoken")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") == origin {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the data plane does not trust %s 10 s after it was added\n%s", origin, h.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var outRE = regexp.MustCompile(`(?s)<pre id="out">(.*?)</pre>`)

// runBrowser loads url in headless Chromium with a fresh profile, lets the
// page's network activity finish, and returns the lines of #out together
// with a report (the dumped DOM and Chromium's stderr) for failure messages.
func runBrowser(t *testing.T, chromium, url string) ([]string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(),
		// Virtual time stands still while fetches are pending, so the
		// budget ends only after the page has done all its calls.
		"--virtual-time-budget=15000",
		"--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	report := fmt.Sprintf("--- dumped DOM:\n%s\n--- chromium stderr:\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, report)
	}
	m := outRE.FindSubmatch(stdout.Bytes())
	if m == nil {
		t.Fatalf("no <pre id=\"out\"> in the dumped DOM\n%s", report)
	}
	text := strings.TrimRight(html.UnescapeString(string(m[1])), "\n")
	if text == "" {
		return nil, report
	}
	return strings.Split(text, "\n"), report
}

// countPreflights counts the data plane's request records for OPTIONS.
func countPreflights(logs string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var rec struct{ Msg, Method, Tenant string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "request" && rec.Method == http.MethodOptions && rec.Tenant == "startupwebapp" {
			n++
		}
	}
	return n
}

func containsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
