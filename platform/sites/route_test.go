package sites_test

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/logtest"
	"github.com/startupwebapp/platform/platform/sites"
)

// routes is the access log's routes by tenant, in order, from logs.
func routes(t *testing.T, logs *logtest.Buffer) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rec := range logs.Requests(t) {
		tenant, _ := rec["tenant"].(string)
		route, _ := rec["route"].(string)
		out[tenant] += route + " "
	}
	return out
}

// A site's answers, files and its 404s alike, are logged and counted under
// the route "site"; what it hands on keeps its own route.
func TestSiteRouteLabel(t *testing.T) {
	t.Parallel()
	logs := &logtest.Buffer{}
	reg := prometheus.NewRegistry()
	e := newEnv(t, envConfig{log: slog.New(slog.NewJSONHandler(logs, nil)), metrics: reg})
	e.deploy(t, e.acme, files(t, "index.html", page("home"), "error.html", page("oops")))

	for _, tc := range []struct{ host, path string }{
		{"www.acme.test", "/"},
		{"www.acme.test", "/missing"},
		{"www.acme.test", "/user/logged-in"},
		{"www.other.test", "/"},
	} {
		e.mustGet(t, tc.host, tc.path)
	}
	got := routes(t, logs)
	if want := "site site /user/logged-in "; got["acme"] != want {
		t.Errorf("acme's routes logged %q, want %q", got["acme"], want)
	}
	if want := "unmatched "; got["other"] != want {
		t.Errorf("other's routes logged %q, want %q (no site: the storefront stand-in)", got["other"], want)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "swa_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["resolved"]+" "+labels["route"]+" "+labels["status"]] += m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{"true " + sites.Route + " 200": 1, "true " + sites.Route + " 404": 1, "true unmatched 200": 1} {
		if counts[k] != want {
			t.Errorf("swa_http_requests_total{%s} = %v, want %v (all: %v)", k, counts[k], want, counts)
		}
	}
}
