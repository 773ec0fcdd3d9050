package server

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP metrics; a nil *metrics records nothing.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swa_http_requests_total",
			Help: "Requests answered, by whether the host named a tenant, route pattern and status (a tenant's own counts are its usage: platform/usage).",
		}, []string{"resolved", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "swa_http_request_duration_seconds",
			Help:    "Time from the first middleware to the response, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	m.requests = register(reg, m.requests)
	m.latency = register(reg, m.latency)
	return m
}

// register registers c, or returns the collector already registered under
// its name (several apps may share one registry, as tests do).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic("server: register metrics: " + err.Error())
	}
	return c
}

// observe counts a request. No label names the tenant: a thousand
// tenants would make a thousand series of each.
func (m *metrics) observe(resolved bool, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(strconv.FormatBool(resolved), route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}
