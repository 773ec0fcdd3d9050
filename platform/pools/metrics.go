package pools

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of a Manager; a nil *metrics records nothing.
type metrics struct {
	acquire   prometheus.Histogram
	waits     prometheus.Counter
	exhaust   prometheus.Counter
	evictions *prometheus.CounterVec
	opens     prometheus.Counter
	conns     prometheus.Counter
	closes    *prometheus.CounterVec
}

// stateCollector reports the Manager's gauges at scrape time.
type stateCollector struct {
	m                         *Manager
	pools, conns, open, limit *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pools
	ch <- c.conns
	ch <- c.open
	ch <- c.limit
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	ch <- prometheus.MustNewConstMetric(c.pools, prometheus.GaugeValue, float64(s.Pools))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.Acquired), "acquired")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.Constructing), "constructing")
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.Open))
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(s.Budget))
}

func newMetrics(reg prometheus.Registerer, m *Manager) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	x := &metrics{
		acquire: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "swa_pool_acquire_seconds",
			Help:    "Time Acquire took to hand out a tenant database connection (or give up).",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .25, .5, 1, 2, 5},
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swa_pool_budget_waits_total",
			Help: "New connections that had to wait for a slot of the connection budget.",
		}),
		exhaust: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swa_pool_budget_exhausted_total",
			Help: "Acquires that gave up after the acquire timeout (answered 503).",
		}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swa_pool_evictions_total",
			Help: "Idle connections closed to make room in the budget.",
		}, []string{"reason"}),
		opens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swa_pool_opened_total",
			Help: "Tenant pools opened.",
		}),
		conns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swa_pool_connections_opened_total",
			Help: "Tenant database connections established, each a login; few per request means the budget keeps connections warm.",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swa_pool_closed_total",
			Help: "Tenant pools closed, by reason: idle, generation, tenant (suspended or deleted), closed.",
		}, []string{"reason"}),
	}
	state := &stateCollector{
		m:     m,
		pools: prometheus.NewDesc("swa_pools_open", "Tenant pools open.", nil, nil),
		conns: prometheus.NewDesc("swa_pool_connections", "Tenant database connections by state.", []string{"state"}, nil),
		open:  prometheus.NewDesc("swa_pool_budget_open", "Physical tenant database connections open (budget use).", nil, nil),
		limit: prometheus.NewDesc("swa_pool_budget_limit", "The connection budget.", nil, nil),
	}
	for _, c := range []prometheus.Collector{x.acquire, x.waits, x.exhaust, x.evictions, x.opens, x.conns, x.closes, state} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return x, nil
}

func (x *metrics) observeAcquire(d time.Duration) {
	if x != nil {
		x.acquire.Observe(d.Seconds())
	}
}

func (x *metrics) budgetWait() {
	if x != nil {
		x.waits.Inc()
	}
}

func (x *metrics) exhausted() {
	if x != nil {
		x.exhaust.Inc()
	}
}

func (x *metrics) evicted(reason string) {
	if x != nil {
		x.evictions.WithLabelValues(reason).Inc()
	}
}

func (x *metrics) opened() {
	if x != nil {
		x.opens.Inc()
	}
}

func (x *metrics) connOpened() {
	if x != nil {
		x.conns.Inc()
	}
}

func (x *metrics) closedPool(reason string) {
	if x != nil {
		x.closes.WithLabelValues(reason).Inc()
	}
}
