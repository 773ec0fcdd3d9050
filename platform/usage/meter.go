package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// DB runs the flush function; the data plane's registry pool is one (its
// read-only role may execute usage_record_flush and nothing else here).
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Defaults of Options.
const (
	DefaultInterval     = 15 * time.Second
	DefaultFlushTimeout = 10 * time.Second
)

// Options configures a Meter.
type Options struct {
	// DB is the registry. Required.
	DB DB
	// Replica names the replica in its flush keys (default the host name).
	// A random suffix is added at every start, so a restarted replica's
	// flush numbers never meet its previous run's.
	Replica string
	// Interval is how often counts are flushed (default DefaultInterval).
	Interval time.Duration
	// FlushTimeout is the deadline of one flush (default
	// DefaultFlushTimeout).
	FlushTimeout time.Duration
	// Metrics receives swa_usage_* metrics, none labelled by tenant; nil:
	// not collected.
	Metrics prometheus.Registerer
	Log     *slog.Logger
	// Now is the clock that puts counts in their hour (default time.Now).
	Now func() time.Time
}

// Meter counts usage in memory and flushes it to the registry. It is a
// Recorder; its methods are safe for concurrent use.
type Meter struct {
	o  Options
	id string

	// mu guards cur: recording holds it shared while it adds to a counter,
	// so the flush that swaps cur (holding it exclusively) sees every
	// addition made to the map it took.
	mu  sync.RWMutex
	cur map[key]*counts

	// flushMu serializes flushes; inflight is the flush not yet
	// acknowledged, sent again with the same sequence number until it is.
	flushMu  sync.Mutex
	seq      int64
	inflight *batch
	pending  atomic.Int64 // tenant-hours in cur and inflight, for the gauge

	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	once    sync.Once

	flushes *prometheus.CounterVec
}

type key struct {
	tenant int64
	hour   int64 // Unix seconds of the UTC hour's start
}

type counts struct {
	requests, orders, events, emails atomic.Int64

	rmu     sync.Mutex
	revenue map[string]*revenue
}

type revenue struct{ orders, cents int64 }

// batch is one numbered flush.
type batch struct {
	seq  int64
	rows []byte // the JSON argument of usage_record_flush
	keys int
}

var replicaRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// NewMeter returns a meter; call Run to flush periodically and Close to
// flush the rest.
func NewMeter(o Options) (*Meter, error) {
	if o.DB == nil {
		return nil, errors.New("usage: Options.DB is required")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	name := o.Replica
	if name == "" {
		name, _ = os.Hostname()
	}
	name = replicaRE.ReplaceAllString(name, "-")
	if len(name) > 60 {
		name = name[:60]
	}
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("usage: replica id: %w", err)
	}
	if name != "" {
		name += "-"
	}
	m := &Meter{o: o, id: name + hex.EncodeToString(suffix), cur: map[key]*counts{},
		stop: make(chan struct{}), done: make(chan struct{})}
	m.flushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swa_usage_flushes_total",
		Help: "Usage flushes to the registry by result: ok, duplicate (a retried flush already applied), error.",
	}, []string{"result"})
	for _, r := range []string{"ok", "duplicate", "error"} {
		m.flushes.WithLabelValues(r)
	}
	if o.Metrics != nil {
		pendingGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "swa_usage_pending_tenants",
			Help: "Tenant-hours whose usage counts this replica has not yet flushed to the registry.",
		}, func() float64 { return float64(m.pending.Load()) })
		for _, c := range []prometheus.Collector{m.flushes, pendingGauge} {
			if err := o.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("usage: metrics: %w", err)
			}
		}
	}
	return m, nil
}

// ID is the replica id of the meter's flushes.
func (m *Meter) ID() string { return m.id }

// Request implements Recorder.
func (m *Meter) Request(tenant int64) { m.add(tenant, func(c *counts) { c.requests.Add(1) }) }

// ClientEvent implements Recorder.
func (m *Meter) ClientEvent(tenant int64) { m.add(tenant, func(c *counts) { c.events.Add(1) }) }

// EmailSent implements Recorder.
func (m *Meter) EmailSent(tenant int64) { m.add(tenant, func(c *counts) { c.emails.Add(1) }) }

// Order implements Recorder.
func (m *Meter) Order(tenant int64, currency string, cents int64) {
	cur := currencyOf(currency)
	m.add(tenant, func(c *counts) {
		c.orders.Add(1)
		c.rmu.Lock()
		if c.revenue == nil {
			c.revenue = map[string]*revenue{}
		}
		r := c.revenue[cur]
		if r == nil {
			r = &revenue{}
			c.revenue[cur] = r
		}
		r.orders++
		r.cents += cents
		c.rmu.Unlock()
	})
}

func (m *Meter) add(tenant int64, fn func(*counts)) {
	if tenant <= 0 {
		return
	}
	k := key{tenant: tenant, hour: m.o.Now().UTC().Truncate(time.Hour).Unix()}
	m.mu.RLock()
	c := m.cur[k]
	if c != nil {
		fn(c)
		m.mu.RUnlock()
		return
	}
	m.mu.RUnlock()
	m.mu.Lock()
	c = m.cur[k]
	if c == nil {
		c = &counts{}
		m.cur[k] = c
		m.pending.Add(1)
	}
	fn(c)
	m.mu.Unlock()
}

// Run flushes every Interval until ctx ends or Close is called. A failed
// flush is logged and sent again (with its sequence number) next time.
func (m *Meter) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("usage: Run called twice")
	}
	defer close(m.done)
	tick := time.NewTicker(m.o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.stop:
			return nil
		case <-tick.C:
			fctx, cancel := context.WithTimeout(ctx, m.o.FlushTimeout)
			if err := m.Flush(fctx); err != nil && ctx.Err() == nil {
				m.o.Log.Warn("usage flush failed; it is retried", "replica", m.id, "err", err)
			}
			cancel()
		}
	}
}

// Close stops Run and flushes what is left, until ctx ends: the flush not
// yet acknowledged first, then the counts since.
func (m *Meter) Close(ctx context.Context) error {
	m.once.Do(func() { close(m.stop) })
	if m.started.Load() {
		select {
		case <-m.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		if err := m.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("usage: flush at close: %w", err)
			}
			m.o.Log.Warn("usage flush at close failed; retrying", "replica", m.id, "err", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("usage: flush at close: %w", err)
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if m.pending.Load() == 0 {
			return nil
		}
	}
}

// Flush sends the unacknowledged flush again if there is one, else takes
// the counts so far as the next numbered flush and sends it. A flush that
// fails stays unacknowledged, to be sent again with the same number, and
// the counts made meanwhile wait for the next one.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	if m.inflight == nil {
		m.mu.Lock()
		taken := m.cur
		if len(taken) == 0 {
			m.mu.Unlock()
			return nil
		}
		m.cur = map[key]*counts{}
		m.mu.Unlock()
		rows, err := encode(taken)
		if err != nil {
			return err
		}
		m.seq++
		m.inflight = &batch{seq: m.seq, rows: rows, keys: len(taken)}
	}
	applied, err := m.send(ctx, m.inflight)
	if err != nil {
		m.flushes.WithLabelValues("error").Inc()
		return fmt.Errorf("usage: flush %s/%d: %w", m.id, m.inflight.seq, err)
	}
	if applied {
		m.flushes.WithLabelValues("ok").Inc()
	} else {
		m.flushes.WithLabelValues("duplicate").Inc()
	}
	m.pending.Add(-int64(m.inflight.keys))
	m.inflight = nil
	return nil
}

const recordFlushSQL = `SELECT usage_record_flush($1, $2, $3::jsonb)`

func (m *Meter) send(ctx context.Context, b *batch) (applied bool, err error) {
	err = m.o.DB.QueryRow(ctx, recordFlushSQL, m.id, b.seq, string(b.rows)).Scan(&applied)
	return applied, err
}

// flushRow is one element of usage_record_flush's argument.
type flushRow struct {
	Tenant       int64                  `json:"tenant"`
	Hour         time.Time              `json:"hour"`
	Requests     int64                  `json:"requests,omitempty"`
	Orders       int64                  `json:"orders,omitempty"`
	ClientEvents int64                  `json:"client_events,omitempty"`
	EmailsSent   int64                  `json:"emails_sent,omitempty"`
	Revenue      map[string]flushAmount `json:"revenue,omitempty"`
}

type flushAmount struct {
	Orders int64 `json:"orders"`
	Cents  int64 `json:"cents"`
}

// encode writes the counts taken as flush rows, in key order (the
// function's row locks then come in one order on every replica).
func encode(taken map[key]*counts) ([]byte, error) {
	rows := make([]flushRow, 0, len(taken))
	for k, c := range taken {
		r := flushRow{Tenant: k.tenant, Hour: time.Unix(k.hour, 0).UTC(), Requests: c.requests.Load(),
			Orders: c.orders.Load(), ClientEvents: c.events.Load(), EmailsSent: c.emails.Load()}
		c.rmu.Lock()
		if len(c.revenue) > 0 {
			r.Revenue = make(map[string]flushAmount, len(c.revenue))
			for cur, v := range c.revenue {
				r.Revenue[cur] = flushAmount{Orders: v.orders, Cents: v.cents}
			}
		}
		c.rmu.Unlock()
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Tenant != rows[j].Tenant {
			return rows[i].Tenant < rows[j].Tenant
		}
		return rows[i].Hour.Before(rows[j].Hour)
	})
	b, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("usage: encode flush: %w", err)
	}
	return b, nil
}
