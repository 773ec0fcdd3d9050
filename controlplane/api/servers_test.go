package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/controlplane/registry"
)

// TestDBServersAndMove registers the second test cluster through the API
// (refusing bad input and a login that does not work, without echoing the
// connection string), lists the servers without their credentials, and
// moves a tenant there as an operation, whose record the move's GET shows.
func TestDBServersAndMove(t *testing.T) {
	t.Parallel()
	h := newHarnessAPI(t, nil, func(o *Options) { o.MoveDropInterval = -1 })
	dsn := h.env.SecondServerDSN()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "not-the-password")

	tn := h.create("movable", "")
	for _, tc := range []struct {
		body, field string
	}{
		{`{"admin_dsn":"` + dsn + `"}`, "name"},
		{`{"name":"Bad Name","admin_dsn":"` + dsn + `"}`, "name"},
		{`{"name":"second"}`, "admin_dsn"},
		{`{"name":"second","admin_dsn":"not a dsn = ="}`, "admin_dsn"},
		{`{"name":"second","admin_dsn":"` + wrong.String() + `"}`, "admin_dsn"},
		{`{"name":"second","admin_dsn":"` + dsn + `","capacity":-1}`, "capacity"},
	} {
		r := h.must(http.StatusBadRequest, "POST", "/v1/db-servers", tc.body)
		if e := r.errorOf(t); e.Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.body, e.Field, tc.field)
		}
	}
	var sv registry.DBServer
	h.must(http.StatusCreated, "POST", "/v1/db-servers", `{"name":"second","admin_dsn":"`+dsn+`","capacity":50}`).decode(t, &sv)
	if sv.Name != "second" || sv.Host != u.Hostname() || fmt.Sprint(sv.Port) != u.Port() || sv.Capacity != 50 || sv.Tenants != 0 {
		t.Errorf("registered %+v", sv)
	}
	h.must(http.StatusOK, "POST", "/v1/db-servers", `{"name":"second","admin_dsn":"`+dsn+`"}`).decode(t, &sv)
	if sv.Capacity != 50 {
		t.Errorf("capacity %d after an update without one, want 50 kept", sv.Capacity)
	}
	var list dbServerList
	h.must(http.StatusOK, "GET", "/v1/db-servers", "").decode(t, &list)
	if len(list.DBServers) != 2 || list.DBServers[0].Name != "default" || list.DBServers[1].Name != "second" || list.DBServers[0].Tenants != 1 {
		t.Errorf("servers %+v, want default (1 tenant) and second", list.DBServers)
	}

	h.must(http.StatusBadRequest, "POST", "/v1/tenants/movable/move", `{}`)
	h.must(http.StatusBadRequest, "POST", "/v1/tenants/movable/move", `{"to_server":"nowhere"}`)
	h.must(http.StatusConflict, "POST", "/v1/tenants/movable/move", `{"to_server":"default"}`)
	h.must(http.StatusNotFound, "POST", "/v1/tenants/nobody/move", `{"to_server":"second"}`)
	h.must(http.StatusNotFound, "GET", "/v1/tenants/movable/move", "")
	r := h.must(http.StatusAccepted, "POST", "/v1/tenants/movable/move", `{"to_server":"second"}`)
	if op := h.wait(r); op.Status != "succeeded" {
		t.Fatalf("move: operation %s: %v", op.Status, deref(op.Error))
	}
	var m registry.Move
	h.must(http.StatusOK, "GET", "/v1/tenants/movable/move", "").decode(t, &m)
	if m.Status != registry.MoveSwitched || m.From != "default" || m.To != "second" || m.PausedMS == nil || m.DropAfter == nil {
		t.Errorf("move %+v, want switched from default to second", m)
	}
	var after registry.Tenant
	h.must(http.StatusOK, "GET", "/v1/tenants/movable", "").decode(t, &after)
	if deref(after.DBServer) != "second" || after.WritesPaused || after.ID != tn.ID {
		t.Errorf("tenant on %s, writes paused %v; want second, false", deref(after.DBServer), after.WritesPaused)
	}
	h.must(http.StatusOK, "GET", "/v1/db-servers", "").decode(t, &list)
	if list.DBServers[1].Tenants != 1 {
		t.Errorf("second server holds %d tenants, want 1", list.DBServers[1].Tenants)
	}
	for _, where := range []string{h.allResponses(), h.logs.String()} {
		if strings.Contains(where, password) || strings.Contains(where, "not-the-password") {
			t.Error("an admin password is in a response or the log")
		}
	}
}
