package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/logtest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// harness is one test's control plane: its own platform database, local
// secrets store, tenant database prefix, provisioning service and API.
type harness struct {
	t     testing.TB
	pool  *pgxpool.Pool
	store secrets.Store
	prov  *provision.Service
	srv   *Server
	token string
	logs  *logtest.Buffer
	// bodies keeps every response body, to search for leaked secrets.
	bodies *logtest.Buffer
	env    *provisiontest.Env
}

// on returns the harness reporting failures to t (a subtest).
func (h *harness) on(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with the provisioning options changed by mod.
func newHarnessWith(t testing.TB, mod func(*provision.Options)) *harness {
	t.Helper()
	return newHarnessAPI(t, mod, nil)
}

// newHarnessAPI is newHarness with the provisioning options changed by mod
// and the API's options by apiMod (either may be nil).
func newHarnessAPI(t testing.TB, mod func(*provision.Options), apiMod func(*Options)) *harness {
	t.Helper()
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pe := provisiontest.New(t, provisiontest.Config{Tag: "a", Log: log, Options: mod})
	token := pgtest.RandomName("bootstrap-token-")
	opts := Options{Provision: pe.Service, Log: log, BootstrapToken: token, BodyLimit: 64 << 10}
	if apiMod != nil {
		apiMod(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &harness{t: t, pool: pe.Platform, store: pe.Secrets, prov: pe.Service, srv: srv, token: token, logs: logs, bodies: &logtest.Buffer{}, env: pe}
}

// response is a decoded answer of the API.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorOf returns the error object of an error response.
func (r response) errorOf(t testing.TB) errorDetail {
	t.Helper()
	var b errorBody
	r.decode(t, &b)
	return b.Error
}

// do sends one request with the harness's token ("" body: none).
func (h *harness) do(method, path, body string) response {
	h.t.Helper()
	return h.doAs(h.token, method, path, body)
}

func (h *harness) doAs(token, method, path, body string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := h.srv.App().Test(req, 60_000)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	h.bodies.Write(append(b, '\n')) //nolint:errcheck
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// must sends a request and fails the test unless the status is want.
func (h *harness) must(want int, method, path, body string) response {
	h.t.Helper()
	r := h.do(method, path, body)
	if r.Status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// wait polls an operation until it ends and returns it.
func (h *harness) wait(r response) operationView {
	h.t.Helper()
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v1/operations/") {
		h.t.Fatalf("Location %q, want /v1/operations/{id}", loc)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		var op operationView
		h.must(http.StatusOK, "GET", loc, "").decode(h.t, &op)
		if op.Status != registry.OperationQueued && op.Status != registry.OperationRunning {
			return op
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("operation %s still running", loc)
	return operationView{}
}

// create makes an active tenant through the API.
func (h *harness) create(slug string, extra string) registry.Tenant {
	h.t.Helper()
	body := `{"slug":"` + slug + `"` + extra + `}`
	r := h.must(http.StatusAccepted, "POST", "/v1/tenants", body)
	if op := h.wait(r); op.Status != "succeeded" {
		h.t.Fatalf("create %s: operation %s: %v", slug, op.Status, deref(op.Error))
	}
	var t registry.Tenant
	h.must(http.StatusOK, "GET", "/v1/tenants/"+slug, "").decode(h.t, &t)
	if t.Status != registry.StatusActive {
		h.t.Fatalf("tenant %s is %s after create", slug, t.Status)
	}
	return t
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// allResponses returns every response body seen so far.
func (h *harness) allResponses() string {
	return h.bodies.String()
}

// listen serves the API on a loopback port and returns its base URL.
func (h *harness) listen() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go h.srv.App().Listener(ln) //nolint:errcheck
	return "http://" + ln.Addr().String()
}
