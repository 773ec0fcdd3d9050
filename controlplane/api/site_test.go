package api

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/sites"
)

// siteTgz builds a .tar.gz of name, body pairs.
func siteTgz(t *testing.T, kv ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := 0; i < len(kv); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: kv[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(kv[i+1]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload posts a bundle to the tenant's site.
func (h *harness) upload(slug string, bundle []byte) response {
	h.t.Helper()
	req := httptest.NewRequest("POST", "/v1/tenants/"+slug+"/site/versions", bytes.NewReader(bundle))
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+h.token)
	res, err := h.srv.App().Test(req, 60_000)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// The site routes: deploy, list, rollback, mode, delete, each audited, and
// every refusal a 4xx naming the entry or the limit.
func TestSiteRoutes(t *testing.T) {
	t.Parallel()
	h := newHarnessAPI(t, nil, func(o *Options) {
		o.SiteLimits = sites.Limits{BundleBytes: 256 << 10, Files: 3, FileBytes: 160 << 10}
	})
	h.create("acme", `,"domains":["www.acme.test"]`)

	r := h.upload("acme", siteTgz(t, "index.html", "<h1>one</h1>"))
	if r.Status != http.StatusCreated || r.Header.Get("Location") != "/v1/tenants/acme/site" {
		t.Fatalf("deploy: %d %s", r.Status, r.Body)
	}
	var v sites.Version
	r.decode(t, &v)
	if v.Number != 1 || !v.Current || !v.Ready || v.Files != 1 || !strings.HasPrefix(v.Actor, "token:") {
		t.Errorf("deployed %+v", v)
	}
	if r := h.upload("acme", siteTgz(t, "index.html", "<h1>two</h1>")); r.Status != http.StatusCreated {
		t.Fatalf("second deploy: %d %s", r.Status, r.Body)
	}
	// A bundle larger than the API's body limit (64 KiB here) but within
	// the bundle limit is taken.
	noise := make([]byte, 100<<10)
	_, _ = rand.Read(noise)
	if r := h.upload("acme", siteTgz(t, "index.html", "<h1>two</h1>", "noise.bin", string(noise))); r.Status != http.StatusCreated {
		t.Fatalf("deploy of %d bytes: %d %s", len(noise), r.Status, r.Body)
	}
	var site sites.Site
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/site", "").decode(t, &site)
	if site.Mode != "replace" || site.CurrentVersion == nil || *site.CurrentVersion != 3 || len(site.Versions) != 3 {
		t.Errorf("site %+v", site)
	}
	h.must(http.StatusOK, "POST", "/v1/tenants/acme/site/rollback", `{"version":1}`).decode(t, &site)
	if *site.CurrentVersion != 1 {
		t.Errorf("after rollback: current %d", *site.CurrentVersion)
	}
	h.must(http.StatusOK, "PUT", "/v1/tenants/acme/site/mode", `{"mode":"domain","domain":"www.acme.test"}`).decode(t, &site)
	if site.Mode != "domain" || site.Domain == nil || *site.Domain != "www.acme.test" {
		t.Errorf("after mode: %+v", site)
	}
	h.must(http.StatusConflict, "DELETE", "/v1/tenants/acme/site/versions/1", "")
	h.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/site/versions/3", "")
	h.must(http.StatusNotFound, "DELETE", "/v1/tenants/acme/site/versions/3", "")
	h.must(http.StatusNotFound, "POST", "/v1/tenants/acme/site/rollback", `{"version":3}`)

	var audit auditPage
	h.must(http.StatusOK, "GET", "/v1/audit?tenant=acme", "").decode(t, &audit)
	var actions []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "site.") {
			actions = append(actions, e.Action)
		}
	}
	if got := strings.Join(actions, " "); got != "site.delete-version site.mode site.rollback site.deploy site.deploy site.deploy" {
		t.Errorf("audited %q", got)
	}

	for _, tc := range []struct {
		name, body, path, field, msg string
		status                       int
	}{
		{"mode unknown", `{"mode":"sideways"}`, "/site/mode", "mode", "replace or domain", 400},
		{"mode foreign domain", `{"mode":"domain","domain":"shop.other.test"}`, "/site/mode", "domain", "not a domain of the tenant", 400},
		{"mode replace with domain", `{"mode":"replace","domain":"www.acme.test"}`, "/site/mode", "domain", "give no domain", 400},
		{"rollback zero", `{"version":0}`, "/site/rollback", "version", "kept version", 400},
		{"rollback unknown field", `{"number":1}`, "/site/rollback", "number", "unknown field", 400},
	} {
		r := h.do("POST", "/v1/tenants/acme"+tc.path, tc.body)
		if strings.HasSuffix(tc.path, "mode") {
			r = h.do("PUT", "/v1/tenants/acme"+tc.path, tc.body)
		}
		e := r.errorOf(t)
		if r.Status != tc.status || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d on %s with %q", tc.name, r.Status, e, tc.status, tc.field, tc.msg)
		}
	}

	big := strings.Repeat("x", 161<<10)
	for _, tc := range []struct {
		name   string
		bundle []byte
		status int
		msg    string
	}{
		{"traversal", siteTgz(t, "index.html", "x", "../../etc/cron.d/evil", "x"), 400, `bundle entry "../../etc/cron.d/evil": leaves the site's root`},
		{"api prefix", siteTgz(t, "order/index.html", "x"), 400, "lies under /order/"},
		{"too many files", siteTgz(t, "a", "1", "b", "2", "c", "3", "d", "4"), 413, "more than 3 files, the limit"},
		{"file too big", siteTgz(t, "big.bin", big), 413, `"big.bin": is 161 KiB, over the limit of 160 KiB per file`},
		{"not a bundle", []byte(`{"json":true}`), 400, "not a gzip-compressed tar archive"},
	} {
		r := h.upload("acme", tc.bundle)
		e := r.errorOf(t)
		if r.Status != tc.status || e.Field != "bundle" || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d with %q", tc.name, r.Status, e, tc.status, tc.msg)
		}
	}
	if r := h.upload("nobody", siteTgz(t, "index.html", "x")); r.Status != http.StatusNotFound {
		t.Errorf("deploy to an unknown tenant: %d", r.Status)
	}
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/site", "").decode(t, &site)
	if len(site.Versions) != 2 {
		t.Errorf("refused bundles left versions: %+v", site.Versions)
	}

	// An upload whose Content-Length passes the bundle limit is refused on
	// its header, naming the limit, and every other route keeps the API's
	// own body limit (64 KiB here).
	base := h.listen()
	for _, tc := range []struct {
		path   string
		length int
		msg    string
	}{
		{"/v1/tenants/acme/site/versions", 300 << 10, "bundle: the upload is over the limit of 256 KiB (compressed)"},
		{"/v1/tenants", 70 << 10, "request body too large"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		head := "POST " + tc.path + " HTTP/1.1\r\nHost: controlplane.test\r\nAuthorization: Bearer " + h.token +
			"\r\nContent-Type: application/gzip\r\nContent-Length: " + strconv.Itoa(tc.length) + "\r\n\r\n"
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		var b errorBody
		_ = json.NewDecoder(res.Body).Decode(&b)
		res.Body.Close()
		conn.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(b.Error.Message, tc.msg) {
			t.Errorf("%s with %d bytes: %d %+v, want 413 with %q", tc.path, tc.length, res.StatusCode, b, tc.msg)
		}
	}
}

// The site schemas of openapi.json list the fields of the types the
// handlers encode and decode.
func TestOpenAPISiteSchemas(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]reflect.Type{
		"Site":         reflect.TypeFor[sites.Site](),
		"SiteVersion":  reflect.TypeFor[sites.Version](),
		"SiteRollback": reflect.TypeFor[rollbackRequest](),
		"SiteMode":     reflect.TypeFor[siteModeRequest](),
	} {
		var documented []string
		for p := range doc.Components.Schemas[name].Properties {
			documented = append(documented, p)
		}
		sort.Strings(documented)
		if want := jsonFields(typ); !slices.Equal(documented, want) {
			t.Errorf("%s: properties %v, want %v", name, documented, want)
		}
	}
}

// The domain a site is served on (mode domain) cannot be removed: 409 in
// the API's error shape saying why; once the site moves, it can.
func TestRemoveSiteDomain(t *testing.T) {
	t.Parallel()
	h := newHarnessAPI(t, nil, nil)
	h.create("acme", `,"domains":["www.acme.test","shop.acme.test"]`)
	if r := h.upload("acme", siteTgz(t, "index.html", "<h1>one</h1>")); r.Status != http.StatusCreated {
		t.Fatalf("deploy: %d %s", r.Status, r.Body)
	}
	h.must(http.StatusOK, "PUT", "/v1/tenants/acme/site/mode", `{"mode":"domain","domain":"www.acme.test"}`)

	r := h.do("DELETE", "/v1/tenants/acme/domains/www.acme.test", "")
	e := r.errorOf(t)
	if r.Status != http.StatusConflict || e.Code != "conflict" || !strings.Contains(e.Message, "serves the tenant's own site") {
		t.Fatalf("removing the site's domain: %d %+v, want 409 conflict saying the site is served there", r.Status, e)
	}
	var domains struct{ Domains []any }
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/domains", "").decode(t, &domains)
	if len(domains.Domains) != 3 {
		t.Errorf("domains after the refusal: %v", domains.Domains)
	}
	// Another domain goes; the site's goes once the site is elsewhere.
	h.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/domains/shop.acme.test", "")
	h.must(http.StatusOK, "PUT", "/v1/tenants/acme/site/mode", `{"mode":"replace"}`)
	h.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/domains/www.acme.test", "")
}
