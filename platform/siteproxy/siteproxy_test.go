package siteproxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/logtest"
	"github.com/startupwebapp/platform/platform/server"
)

func TestHostsMatch(t *testing.T) {
	h := NewHosts([]string{"www.Example.test", "example.test"})
	for host, want := range map[string]bool{
		"www.example.test":      true,
		"WWW.EXAMPLE.TEST:8443": true,
		"example.test":          true,
		"example.test.":         true,
		"www.example.test.:80":  true,
		"shop.example.test":     false,
		"www.example.test.evil": false,
		"evil-www.example.test": false,
		"[::1]:8000":            false,
		"":                      false,
	} {
		if got := h.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}

// seen is what the recording upstream (a stand-in for the control plane's
// site, to see the bytes that reach it) got.
type seen struct {
	method, host, uri string
	body              []byte
	header            http.Header
}

// recorder is an upstream that records each request and answers as
// answer says; conns counts the connections it accepted.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	got   []seen
	conns atomic.Int32
}

func newRecorder(t *testing.T, answer http.HandlerFunc) *recorder {
	r := &recorder{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, seen{method: req.Method, host: req.Host, uri: req.RequestURI, body: body, header: req.Header.Clone()})
		r.mu.Unlock()
		answer(w, req)
	}))
	r.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.got...)
}

// front serves p in front of a stand-in for the data plane's tenant app on
// ln (a plain listener when nil), and returns its address.
func front(t *testing.T, p *Proxy, ln net.Listener) string {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	srv := &fasthttp.Server{Handler: p.Front(func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(200)
		ctx.SetBodyString("tenant app for " + string(ctx.Host()))
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func newProxy(t *testing.T, o Options) *Proxy {
	t.Helper()
	if o.Hosts == nil {
		o.Hosts = []string{"www.example.test", "example.test"}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// client reaches addr whatever the URL's host, without following redirects.
func client(addr string, tlsConf *tls.Config) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{TLSClientConfig: tlsConf, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}},
	}
}

func TestForwardKeepsRequestAndAnswer(t *testing.T) {
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Add("Set-Cookie", "swa_site_csrf=abc; Path=/; HttpOnly; SameSite=Lax")
		w.Header().Add("Set-Cookie", "swa_founder=xyz; Path=/; HttpOnly; Secure")
		w.Header().Set("Location", "/signup/sent?next=%2Fshops")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Connection", "X-Upstream-Hop")
		w.Header().Set("X-Upstream-Hop", "1")
		w.WriteHeader(http.StatusSeeOther)
		_, _ = w.Write([]byte("see other"))
	})
	reg := prometheus.NewRegistry()
	p := newProxy(t, Options{Target: up.URL, Metrics: reg})
	addr := front(t, p, nil)
	_, port, _ := net.SplitHostPort(addr)
	c := client(addr, nil)

	// A body as Stripe's webhook could send it: its signature is over these
	// exact bytes, CR, LF, NUL and non-UTF-8 included.
	body := []byte("{\"id\":\"evt_1\",\r\n\"data\":\"caf\xc3\xa9 \x00\xff\"}\n\n")
	uri := "/billing/webhook?a=%2F..%2Fv1&b=1"
	for i := range 3 {
		req, _ := http.NewRequest("POST", "http://www.example.test:"+port+uri, bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", "t=1,v1=deadbeef")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "198.51.100.7") // from an untrusted client: replaced
		req.Header.Set("X-Forwarded-Proto", "https")      // likewise
		req.Header.Set("X-Forwarded-Host", "evil.test")
		req.Header.Set("Connection", "X-Client-Hop")
		req.Header.Set("X-Client-Hop", "1")
		req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || string(got) != "see other" {
			t.Fatalf("answer %d %q", resp.StatusCode, got)
		}
		if loc := resp.Header.Get("Location"); loc != "/signup/sent?next=%2Fshops" {
			t.Errorf("Location = %q", loc)
		}
		if cookies := resp.Header.Values("Set-Cookie"); len(cookies) != 2 ||
			cookies[0] != "swa_site_csrf=abc; Path=/; HttpOnly; SameSite=Lax" || cookies[1] != "swa_founder=xyz; Path=/; HttpOnly; Secure" {
			t.Errorf("Set-Cookie = %q", cookies)
		}
		if resp.Header.Get("X-Upstream-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
			t.Errorf("hop-by-hop headers of the answer passed: %v", resp.Header)
		}
		if i == 0 && resp.Close {
			t.Errorf("the client's connection is closed")
		}
	}
	reqs := up.requests()
	if len(reqs) != 3 {
		t.Fatalf("upstream got %d requests, want 3", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.host != "www.example.test:"+port || r.uri != uri {
		t.Errorf("upstream got %s %s on %q", r.method, r.uri, r.host)
	}
	if !bytes.Equal(r.body, body) {
		t.Errorf("body changed on the way:\n got %q\nwant %q", r.body, body)
	}
	if r.header.Get("Stripe-Signature") != "t=1,v1=deadbeef" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("end-to-end headers lost: %v", r.header)
	}
	if xff := r.header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client's address alone", xff)
	}
	if proto := r.header.Get("X-Forwarded-Proto"); proto != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want http", proto)
	}
	for _, h := range []string{"X-Forwarded-Host", "X-Client-Hop", "Proxy-Authorization"} {
		if r.header.Get(h) != "" {
			t.Errorf("%s forwarded", h)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("upstream accepted %d connections for 3 requests, want 1 kept alive", n)
	}
	if n := forwards(t, reg, outcomeOK); n != 3 {
		t.Errorf("ok forwards counted %v, want 3", n)
	}
}

// TestForwardedForFromTrustedProxy: behind a proxy the data plane trusts,
// its hops stay and the client's address is appended; the control plane,
// trusting the data plane, finds the client as the data plane would.
func TestForwardedForFromTrustedProxy(t *testing.T) {
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	p := newProxy(t, Options{Target: up.URL + "/", TrustedProxies: []string{"127.0.0.1"}})
	addr := front(t, p, nil)
	req, _ := http.NewRequest("GET", "http://example.test/", nil)
	req.Header.Set("X-Forwarded-For", "10.9.9.9, 203.0.113.5")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := client(addr, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := up.requests()[0]
	xff := r.header.Get("X-Forwarded-For")
	if xff != "10.9.9.9, 203.0.113.5, 127.0.0.1" || r.header.Get("X-Forwarded-Proto") != "https" {
		t.Fatalf("X-Forwarded-For %q, -Proto %q", xff, r.header.Get("X-Forwarded-Proto"))
	}
	// The control plane trusts the data plane (127.0.0.1 here) and the
	// data plane's own proxy.
	cp, _ := server.ParseProxies([]string{"127.0.0.1"})
	if got := cp.ClientAddr(netip.MustParseAddr("127.0.0.1"), []byte(xff)); got.String() != "203.0.113.5" {
		t.Fatalf("the control plane reads the client as %s, want 203.0.113.5", got)
	}
}

func TestForwardedProtoOnTLS(t *testing.T) {
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	p := newProxy(t, Options{Target: up.URL})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	addr := front(t, p, ln)
	resp, err := client(addr, &tls.Config{InsecureSkipVerify: true}).Get("https://www.example.test/pricing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := up.requests(); len(r) != 1 || r[0].header.Get("X-Forwarded-Proto") != "https" || r[0].uri != "/pricing" {
		t.Fatalf("upstream got %+v", r)
	}
}

func TestOtherHostsGoToNext(t *testing.T) {
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	p := newProxy(t, Options{Target: up.URL})
	addr := front(t, p, nil)
	for _, host := range []string{"shop.example.test", "www.example.test.evil", "shop.test"} {
		resp, err := client(addr, nil).Get("http://" + host + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "tenant app for "+host {
			t.Errorf("%s: %q, want the tenant app", host, body)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("upstream got %d requests for other hosts", n)
	}
}

// checkUnavailable asserts the 503 page.
func checkUnavailable(t *testing.T, resp *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != RetryAfter ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "Temporarily unavailable") {
		t.Fatalf("answer %d, Retry-After %q, %q:\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), body)
	}
}

func TestUnreachableControlPlane(t *testing.T) {
	// A port nobody listens on any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := "http://" + ln.Addr().String()
	ln.Close()
	reg := prometheus.NewRegistry()
	p := newProxy(t, Options{Target: target, Timeout: 2 * time.Second, Metrics: reg})
	addr := front(t, p, nil)
	start := time.Now()
	resp, err := client(addr, nil).Post("http://www.example.test/signup", "application/x-www-form-urlencoded", strings.NewReader("a=1"))
	if err != nil {
		t.Fatal(err)
	}
	checkUnavailable(t, resp)
	if d := time.Since(start); d > 2*time.Second+time.Second {
		t.Errorf("refused connection answered after %v", d)
	}
	if n := forwards(t, reg, outcomeUnreachable); n != 1 {
		t.Errorf("unreachable counted %v, want 1", n)
	}
}

func TestHangingControlPlane(t *testing.T) {
	// Accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
		}
	}()
	const timeout = 500 * time.Millisecond
	reg := prometheus.NewRegistry()
	p := newProxy(t, Options{Target: "http://" + ln.Addr().String(), Timeout: timeout, Metrics: reg})
	addr := front(t, p, nil)
	start := time.Now()
	resp, err := client(addr, nil).Get("http://www.example.test/")
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	checkUnavailable(t, resp)
	if accepted.Load() == 0 {
		t.Fatal("the hanging upstream was never reached")
	}
	if d < timeout || d > timeout+2*time.Second {
		t.Errorf("answered after %v, want at the %v deadline", d, timeout)
	}
	if n := forwards(t, reg, outcomeTimeout); n != 1 {
		t.Errorf("timeouts counted %v, want 1", n)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Target: "cp:8080", Hosts: []string{"www.example.test"}},
		{Target: "http://cp:8080/site", Hosts: []string{"www.example.test"}},
		{Target: "http://cp:8080"},
		{Target: "http://cp:8080", Hosts: []string{"www.example.test"}, TrustedProxies: []string{"nope"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "www.example.test"},
		DNSNames: []string{"www.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// forwards reads swa_platform_site_forward_total{outcome} from reg.
func forwards(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "swa_platform_site_forward_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no swa_platform_site_forward_total{outcome=%q}", outcome)
	return 0
}

// TestForwardIsLogged: a forwarded request has its access-log record, with
// the id the control plane answered with and no query; so has one the
// control plane could not answer.
func TestForwardIsLogged(t *testing.T) {
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-ID", "cp-0042")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("created"))
	})
	var buf logtest.Buffer
	p := newProxy(t, Options{Target: up.URL, Log: slog.New(slog.NewJSONHandler(&buf, nil))})
	addr := front(t, p, nil)
	resp, err := client(addr, nil).Get("http://www.example.test/signup/confirm?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	up.Close() // now unreachable
	resp, err = client(addr, nil).Get("http://example.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	recs := buf.Requests(t)
	if len(recs) != 2 {
		t.Fatalf("%d access-log records, want 2:\n%s", len(recs), buf.String())
	}
	want := []map[string]any{
		{"request_id": "cp-0042", "host": "www.example.test", "method": "GET", "route": Route, "status": 201.0, "bytes": 7.0},
		{"request_id": "", "host": "example.test", "method": "GET", "route": Route, "status": 503.0},
	}
	for i, w := range want {
		for k, v := range w {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v (%v)", i, k, recs[i][k], v, recs[i])
			}
		}
		if _, ok := recs[i]["duration_ms"]; !ok {
			t.Errorf("record %d has no duration_ms", i)
		}
	}
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("the query reached the log:\n%s", buf.String())
	}
}
