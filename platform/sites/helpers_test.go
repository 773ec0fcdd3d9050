package sites_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sites"
)

// entry is one archive entry of a test bundle.
type entry struct {
	name string
	body string
	typ  byte // 0: regular file
	link string
}

// tgz builds a .tar.gz from entries.
func tgz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.link, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar %s: %v", e.name, err)
		}
		if typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
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

// files builds a bundle of regular files (name, body pairs).
func files(t testing.TB, kv ...string) *sites.Bundle {
	t.Helper()
	var es []entry
	for i := 0; i < len(kv); i += 2 {
		es = append(es, entry{name: kv[i], body: kv[i+1]})
	}
	b, err := sites.ReadBundle(bytes.NewReader(tgz(t, es...)), sites.Limits{})
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	return b
}

// env is a platform database with two tenants, a Store on it, and a data
// plane whose directory and site handler read through a swa_dataplane
// login, with a stand-in storefront behind the handler.
type env struct {
	pool   *pgxpool.Pool // owner of the registry (the control plane)
	reader *pgxpool.Pool // a member of swa_dataplane
	store  *sites.Store
	dir    *directory.Directory
	base   string // URL of the data plane
	acme   int64  // tenant ids
	other  int64
	client *http.Client
}

type envConfig struct {
	store   sites.Options
	log     *slog.Logger                           // the data plane's (nil: discarded)
	metrics prometheus.Registerer                  // the data plane's (nil: none)
	blobs   func(reader *pgxpool.Pool) sites.Blobs // data plane backend (nil: database)
	noServe bool
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t, migrations.Platform)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{pool: pool, client: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16},
	}}
	e.acme = directorytest.AddTenant(t, pool, directorytest.Tenant{Slug: "acme", Domains: []string{"www.acme.test", "shop.acme.test"}})
	e.other = directorytest.AddTenant(t, pool, directorytest.Tenant{Slug: "other", Domains: []string{"www.other.test"}})
	cfg.store.DB = pool
	if e.store, err = sites.New(cfg.store); err != nil {
		t.Fatal(err)
	}
	if cfg.noServe {
		return e
	}

	role := pgtest.RandomName("reader_")
	if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'reader-pw' IN ROLE swa_dataplane`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) }) //nolint:errcheck
	u, _ := url.Parse(dsn)
	u.User = url.UserPassword(role, "reader-pw")
	if e.reader, err = pgxpool.New(ctx, u.String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.reader.Close)

	e.dir = directory.New(directory.Options{DB: e.reader, BaseDomain: "example.test"})
	if err := e.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = e.dir.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	ho := sites.HandlerOptions{DB: e.reader}
	if cfg.blobs != nil {
		ho.Blobs = cfg.blobs(e.reader)
	}
	app := server.New(server.Options{
		Directory: e.dir,
		Log:       cfg.log,
		Metrics:   cfg.metrics,
		Apps:      []server.App{api{}, sites.NewHandler(ho), storefront{}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	e.base = "http://" + ln.Addr().String()
	return e
}

// api stands in for the StartupWebApp API apps, mounted before the sites.
type api struct{}

func (api) Mount(r fiber.Router) {
	r.Get("/user/logged-in", func(c *fiber.Ctx) error { return c.SendString("api") })
}

// storefront stands in for the built-in storefront, mounted after the
// sites: whatever reaches it was handed on.
type storefront struct{}

func (storefront) Mount(r fiber.Router) {
	r.Use(func(c *fiber.Ctx) error { return c.SendString("storefront") })
}

// deploy deploys b to tenant and waits until the data plane serves it.
func (e *env) deploy(t *testing.T, tenant int64, b *sites.Bundle) sites.Version {
	t.Helper()
	v, err := e.store.Deploy(context.Background(), tenant, b, "test", nil)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	e.waitServed(t, tenant, v.ID)
	return v
}

// waitServed waits until the data plane's directory serves version id (0:
// no site) for tenant.
func (e *env) waitServed(t *testing.T, tenant, id int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tn := e.dir.ByID(tenant)
		var got int64
		if tn != nil && tn.Site != nil {
			got = tn.Site.Version
		}
		if got == id {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the directory serves site version %d of tenant %d, want %d", got, tenant, id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// response is what get returns.
type response struct {
	status int
	header http.Header
	body   string // decoded per Content-Encoding
	raw    []byte
}

// get fetches path on host with the given request headers (name, value
// pairs), decoding gzip and brotli bodies.
func (e *env) get(t testing.TB, method, host, path string, headers ...string) (response, error) {
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		return response{}, err
	}
	req.Host = host
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	var body io.Reader = bytes.NewReader(raw)
	switch res.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return r, fmt.Errorf("gzip body: %w", err)
		}
		body = zr
	case "br":
		body = brotli.NewReader(body)
	case "":
	default:
		return r, fmt.Errorf("unexpected Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	dec, err := io.ReadAll(body)
	if err != nil {
		return r, fmt.Errorf("decode body: %w", err)
	}
	r.body = string(dec)
	return r, nil
}

func (e *env) mustGet(t *testing.T, host, path string, headers ...string) response {
	t.Helper()
	r, err := e.get(t, http.MethodGet, host, path, headers...)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return r
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

func sha(b []byte) [32]byte { return sha256.Sum256(b) }
