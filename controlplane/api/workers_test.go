package api

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// holdAtRole returns an InStep hook that, while hold is set, stops every
// create at its database step (the role made) until the operation's context
// ends, sending on arrived as it does.
func holdAtRole(hold *atomic.Bool, arrived chan<- string) func(*provision.Options) {
	return func(o *provision.Options) {
		o.InStep = func(ctx context.Context, op, step, point string) error {
			if step != provision.StepDatabase || point != provision.PointRole || !hold.Load() {
				return nil
			}
			arrived <- op
			<-ctx.Done()
			return ctx.Err()
		}
	}
}

// TestOperationsBoundedAndResumed fills both workers (held inside their
// creates) and the queue, sees further operations refused with 503 and
// Retry-After without a trace, stops the server, and sees a new server on
// the same registry (with a smaller pool than what is pending) run every
// accepted operation to the end.
func TestOperationsBoundedAndResumed(t *testing.T) {
	t.Parallel()
	var hold atomic.Bool
	arrived := make(chan string, 16)
	h := newHarnessAPI(t, holdAtRole(&hold, arrived), func(o *Options) { o.Workers, o.Queue = 2, 3 })
	ctx := context.Background()
	reg := h.prov.Registry()
	h.create("keep", "")
	h.create("gone", "")
	hold.Store(true)

	// Two creates take the workers; a create, a delete and a rotation wait.
	var ids []uuid.UUID
	for _, rq := range []struct{ method, path, body string }{
		{"POST", "/v1/tenants", `{"slug":"busy-1"}`},
		{"POST", "/v1/tenants", `{"slug":"busy-2"}`},
		{"POST", "/v1/tenants", `{"slug":"busy-3"}`},
		{"DELETE", "/v1/tenants/gone", ""},
		{"POST", "/v1/tenants/keep/rotate-secrets", ""},
	} {
		var acc acceptedBody
		h.must(http.StatusAccepted, rq.method, rq.path, rq.body).decode(t, &acc)
		ids = append(ids, acc.Operation.ID)
	}
	for range 2 { // both workers are inside a create
		select {
		case <-arrived:
		case <-time.After(90 * time.Second):
			t.Fatal("the workers never reached the held point")
		}
	}
	operations := func() int {
		var n int
		if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM operations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := operations()
	refused := []struct{ method, path, body string }{
		{"POST", "/v1/tenants", `{"slug":"busy-5"}`},
		{"POST", "/v1/tenants/keep/fork", `{"slug":"busy-6"}`},
		{"DELETE", "/v1/tenants/keep", ""},
		{"POST", "/v1/tenants/keep/rotate-secrets", ""},
		{"POST", "/v1/migrations/run", ""},
		{"POST", "/v1/tenants/busy-3/retry", ""},
	}
	for _, rq := range refused {
		r := h.must(http.StatusServiceUnavailable, rq.method, rq.path, rq.body)
		if got := r.Header.Get("Retry-After"); got != "5" {
			t.Errorf("%s %s: Retry-After %q, want 5", rq.method, rq.path, got)
		}
		if e := r.errorOf(t); e.Code != codeUnavailable || !strings.Contains(e.Message, "busy") {
			t.Errorf("%s %s: error %+v", rq.method, rq.path, e)
		}
	}
	if n := operations(); n != before {
		t.Errorf("refused requests recorded %d operations", n-before)
	}
	for _, slug := range []string{"busy-5", "busy-6"} {
		h.must(http.StatusNotFound, "GET", "/v1/tenants/"+slug, "")
	}
	if tn, err := reg.Tenant(ctx, "keep"); err != nil || tn.Status != registry.StatusActive {
		t.Errorf("keep after the refused delete: %+v %v", tn, err)
	}
	statuses := func() map[tenancy.OperationStatus]int {
		out := map[tenancy.OperationStatus]int{}
		for _, id := range ids {
			op, err := reg.GetOperation(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out[op.Status]++
		}
		return out
	}
	if got := statuses(); got[registry.OperationRunning] != 2 || got[registry.OperationQueued] != 3 {
		t.Errorf("operations %v, want 2 running and 3 queued", got)
	}

	// Stop the server: the running creates are cut off, and they and the
	// queued ones stay pending in the registry.
	stop, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := h.srv.Shutdown(stop); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if got := statuses(); got[registry.OperationRunning] != 2 || got[registry.OperationQueued] != 3 {
		t.Errorf("operations after the stop %v, want 2 running and 3 queued", got)
	}

	hold.Store(false)
	srv, err := New(ctx, Options{Provision: h.prov, Workers: 2, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
	})
	deadline := time.Now().Add(3 * time.Minute)
	for _, id := range ids {
		for {
			op, err := reg.GetOperation(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if op.Status == registry.OperationSucceeded {
				break
			}
			if op.Status == registry.OperationFailed || time.Now().After(deadline) {
				t.Fatalf("operation %s after the restart: %s %s", id, op.Status, deref(op.Error))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, slug := range []string{"busy-1", "busy-2", "busy-3"} {
		if tn, err := reg.Tenant(ctx, slug); err != nil || tn.Status != registry.StatusActive {
			t.Errorf("tenant %s after the restart: %+v %v", slug, tn.Status, err)
		}
	}
	if tn, err := reg.Tenant(ctx, "gone"); err != nil || tn.Status != registry.StatusDeleted {
		t.Errorf("tenant gone after the restart: %+v %v", tn.Status, err)
	}
	audit, err := reg.ListAudit(ctx, registry.AuditFilter{TenantSlug: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	rotations := 0
	for _, a := range audit {
		if a.Action == "secrets.rotate" {
			rotations++
			if a.Actor == "" {
				t.Error("the resumed rotation lost its actor")
			}
		}
	}
	if rotations != 1 {
		t.Errorf("%d rotations of keep, want 1", rotations)
	}
}

// TestOperationDeadline: an operation that passes its deadline is recorded
// failed with the reason, not left running.
func TestOperationDeadline(t *testing.T) {
	t.Parallel()
	var hold atomic.Bool
	hold.Store(true)
	arrived := make(chan string, 4)
	// 10 s: room to reach the held point on a loaded machine.
	h := newHarnessAPI(t, holdAtRole(&hold, arrived), func(o *Options) { o.OperationTimeout = 10 * time.Second })
	op := h.wait(h.must(http.StatusAccepted, "POST", "/v1/tenants", `{"slug":"stuck"}`))
	if op.Status != registry.OperationFailed || op.Error == nil || !strings.Contains(*op.Error, "timed out") {
		t.Fatalf("operation %+v %s, want failed for timing out", op, deref(op.Error))
	}
	if len(arrived) != 1 {
		t.Errorf("the create reached the held point %d times, want once", len(arrived))
	}
}

// TestRequestDeadline holds the tenant's workflow lock, as a long workflow
// would, so a request that needs it waits; past the request deadline it is
// answered 503 in the error shape, having changed nothing.
func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	h := newHarnessAPI(t, nil, func(o *Options) { o.RequestTimeout = 2 * time.Second })
	ctx := context.Background()
	if _, err := h.prov.Reserve(ctx, provision.CreateRequest{Slug: "slow"}, "t"); err != nil {
		t.Fatal(err)
	}
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, "swa:tenant:slow"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := h.must(http.StatusServiceUnavailable, "PUT", "/v1/tenants/slow/secrets", `{"smtp_host":"smtp.slow.test"}`)
	if e := r.errorOf(t); e.Code != codeUnavailable || !strings.Contains(e.Message, "too long") {
		t.Errorf("error %+v", e)
	}
	if waited := time.Since(start); waited < 2*time.Second || waited > time.Minute {
		t.Errorf("answered after %s, want at the 2 s deadline", waited)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1))`, "swa:tenant:slow"); err != nil {
		t.Fatal(err)
	}
	st, err := h.prov.SecretsStatus(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	if st.SMTPHost {
		t.Error("the request stopped at its deadline still set the value")
	}
}
