// Package analytics answers the /clientevent/* beacons (docs/api.md
// §6) and records them in the tenant's pageview, ajax_error, button_click and
// link_event tables.
//
// A beacon never waits for the database: the handler parses the query, puts
// one row in its tenant's in-memory buffer and answers "thank you". A
// background flusher writes each tenant's buffer every FlushInterval, or as
// soon as it holds BatchSize rows, with one COPY into a per-connection
// staging table followed by INSERT ... SELECT statements that resolve the
// account, member, prospect, email and ad references with LEFT JOINs (so an
// unknown code becomes NULL, as the contract asks).
//
// Input is never an error (Q21): over-long values are cut to their column's
// length, invalid UTF-8 and NUL bytes are replaced, a non-integer pageWidth
// is NULL, and a missing error_id or button_id is recorded as "" (the row is
// kept: it still says which page failed).
//
// The tenant's logging switch (clientevent_configuration row 1) is checked
// when a batch is written, cached per tenant for FlagTTL: rows received while
// logging is off are discarded then.
//
// A tenant without a warm connection waits longer: under a connection
// budget smaller than the tenants, writing a cold tenant's few rows every
// FlushInterval would cost a database login each time, and those logins
// would take the slots shoppers' requests need. Its rows wait until its
// pool has an idle connection (a request warmed it), BatchSize rows, or
// ColdFlushInterval since the oldest, and one login then writes them all.
//
// What can be lost: rows live only in memory until flushed, so a crash loses
// at most the rows received in the last FlushInterval (ColdFlushInterval
// for a tenant without a warm connection) plus any batch being written
// (Close, called on graceful shutdown, writes everything). A tenant
// whose buffer is full (BufferSize rows, e.g. its database is down) has new
// rows dropped and counted; a batch that fails to write is retried on the
// next flushes and dropped, counted, after three failures.
//
// The plan's events_per_month (directory.Plan.EventsPerMonth) is enforced
// here without a query per beacon: each tenant's buffer keeps an estimate
// of the events recorded this UTC month, seeded from the tenant's
// insight_daily rollups by the first batch it writes and re-read by a batch
// every QuotaRefresh. A beacon over the estimate still answers "thank you"
// (the contract does not change) and is dropped, counted with reason
// over_quota; a batch that re-reads the count keeps only the rows that
// still fit, so no rows are written past the quota by one replica. Each
// replica counts its own beacons between refreshes: across N replicas the
// month may overshoot by what the other N-1 receive in one QuotaRefresh.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/usage"
)

// RootText is the body of GET /clientevent/.
const RootText = "Hello, you're at the clientevent API (version 0.0.1) root. Nothing to see here..."

// thankYou is the JSON string every beacon answers.
const thankYou = `"thank you"`

// Column limits of the event tables (characters).
const (
	maxURL         = 1000
	maxAnonymousID = 100
	maxLabel       = 100 // error_id, button_id
	maxRemoteAddr  = 100
	maxUserAgent   = 1000
	maxCode        = 50 // mb_cd, pr_cd, em_cd, ad_cd columns
)

// DB runs fn with a connection to a tenant's database; *pools.Manager is one.
type DB interface {
	Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error
}

// warmer is a DB that tells whether a tenant has an idle connection, so a
// write would need no login (*pools.Manager). Without it every tenant
// counts as warm.
type warmer interface {
	Warm(tenantID int64) bool
}

// Options configures the analytics app.
type Options struct {
	// Pools gives access to tenant databases.
	Pools DB
	Log   *slog.Logger
	// FlushInterval is the longest a row waits in memory (default 100ms)
	// when its tenant has a warm connection.
	FlushInterval time.Duration
	// ColdFlushInterval is the longest a row waits for a tenant without
	// one (default 5s, at least FlushInterval).
	ColdFlushInterval time.Duration
	// BatchSize rows trigger an immediate flush (default 1000).
	BatchSize int
	// BufferSize caps the rows held per tenant (default 20 * BatchSize).
	BufferSize int
	// FlagTTL is how long a tenant's logging switch is cached (default 5s).
	FlagTTL time.Duration
	// Concurrency bounds the tenants flushed at once (default 8).
	Concurrency int
	// QuotaRefresh is how often a tenant's count of this month's events is
	// re-read from its rollups, for the plan's events_per_month (default 30s).
	QuotaRefresh time.Duration
	// Metrics, when set, receives swa_clientevent_* counters. They carry no
	// tenant label (a thousand tenants would make a thousand series each);
	// a tenant's counts are its usage rows (platform/usage).
	Metrics prometheus.Registerer
	// Usage counts every event accepted into a buffer; nil counts nothing.
	Usage usage.Recorder
}

// App is the /clientevent app; it implements server.App.
type App struct {
	db          DB
	log         *slog.Logger
	interval    time.Duration
	coldEvery   time.Duration
	batch       int
	bufferSize  int
	flagTTL     time.Duration
	concurrency int
	quotaEvery  time.Duration
	now         func() time.Time

	mu      sync.Mutex
	buffers map[int64]*buffer
	closed  bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	sem  chan struct{}

	received  prometheus.Counter
	dropped   *prometheus.CounterVec
	written   prometheus.Counter
	flushErrs prometheus.Counter
	usage     usage.Recorder
}

// buffer holds one tenant's pending rows.
type buffer struct {
	mu       sync.Mutex
	tenant   *directory.Tenant
	rows     []event
	retry    []event // a batch whose write failed, written before rows
	attempts int
	flushing bool
	oldest   time.Time // when the oldest pending row arrived; zero: none

	flag     bool
	flagAt   time.Time
	flagRead bool

	// The month's events as this replica knows them (plan events_per_month):
	// the database's count at the last read plus what was accepted since.
	quotaMonth time.Time // first instant of the UTC month counted
	quotaUsed  int64
	quotaAt    time.Time // last read from the database; zero: never
}

// monthOf is the first instant of t's UTC month.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// overQuota counts one more event against the tenant's monthly quota and
// reports whether it is past it. Called with b.mu held.
func (b *buffer) overQuota(limit *int64, at time.Time) bool {
	if limit == nil {
		return false
	}
	if m := monthOf(at); !m.Equal(b.quotaMonth) {
		b.quotaMonth, b.quotaUsed, b.quotaAt = m, 0, time.Time{}
	}
	if !directory.Allows(limit, b.quotaUsed) {
		return true
	}
	b.quotaUsed++
	return false
}

type kind int16

const (
	kindPageview kind = iota + 1
	kindAjaxError
	kindButtonClick
	kindLinkEvent
)

// event is one row to write; empty strings are NULL except url and label.
type event struct {
	kind        kind
	accountID   int64 // candidate account id from client_event_id, 0 = none
	mbCd, prCd  string
	emCd, adCd  string
	anonymousID string
	url         string
	pageWidth   int32
	hasWidth    bool
	remoteAddr  string
	userAgent   string
	label       string // error_id / button_id
	at          time.Time
}

// New returns the app and starts its flusher; call Close to stop it.
func New(opts Options) *App {
	a := &App{db: opts.Pools, log: opts.Log, interval: opts.FlushInterval, coldEvery: opts.ColdFlushInterval, batch: opts.BatchSize,
		bufferSize: opts.BufferSize, flagTTL: opts.FlagTTL, concurrency: opts.Concurrency, quotaEvery: opts.QuotaRefresh,
		now: time.Now, buffers: map[int64]*buffer{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.interval <= 0 {
		a.interval = 100 * time.Millisecond
	}
	if a.coldEvery <= 0 {
		a.coldEvery = 5 * time.Second
	}
	a.coldEvery = max(a.coldEvery, a.interval)
	if a.batch <= 0 {
		a.batch = 1000
	}
	if a.bufferSize <= 0 {
		a.bufferSize = 20 * a.batch
	}
	if a.flagTTL <= 0 {
		a.flagTTL = 5 * time.Second
	}
	if a.concurrency <= 0 {
		a.concurrency = 8
	}
	if a.quotaEvery <= 0 {
		a.quotaEvery = 30 * time.Second
	}
	a.sem = make(chan struct{}, a.concurrency)
	a.usage = usage.Or(opts.Usage)
	a.received = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "swa_clientevent_received_total", Help: "Client events accepted into a buffer.",
	})
	a.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swa_clientevent_dropped_total", Help: "Client events dropped, by reason (buffer_full, write_failed, logging_off, over_quota).",
	}, []string{"reason"})
	a.written = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "swa_clientevent_written_total", Help: "Client events written to tenant databases.",
	})
	a.flushErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "swa_clientevent_flush_errors_total", Help: "Failed batch writes.",
	})
	if opts.Metrics != nil {
		for _, c := range []prometheus.Collector{a.received, a.dropped, a.written, a.flushErrs} {
			if err := opts.Metrics.Register(c); err != nil {
				a.log.Warn("analytics metrics not registered", "err", err)
			}
		}
	}
	go a.run()
	return a
}

// Mount registers the beacon routes. Every method is answered, as upstream;
// only GET records (and unsafe methods still pass the CSRF middleware first).
func (a *App) Mount(r fiber.Router) {
	r.All("/clientevent/", a.root)
	r.All("/clientevent/pageview", a.beacon(kindPageview))
	r.All("/clientevent/ajaxerror", a.beacon(kindAjaxError))
	r.All("/clientevent/buttonclick", a.beacon(kindButtonClick))
	r.All("/clientevent/linkevent", a.beacon(kindLinkEvent))
}

func (a *App) root(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	return c.SendString(RootText)
}

func (a *App) beacon(k kind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Method() == fiber.MethodGet {
			if e, ok := parse(c, k); ok {
				a.record(server.Tenant(c), e)
			}
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(thankYou)
	}
}

// Pageview records a pageview of url for a page the server rendered
// itself (the built-in storefront, which works without script), as the
// /clientevent/pageview beacon records one: the request's client address
// header and user agent, the visitor's anonymousclientevent value and the
// signed-in account (0: none). It never blocks on the database.
//
// The strings are copied: a caller's may point into fasthttp's buffers,
// which the next request reuses while the event waits for its batch.
func (a *App) Pageview(c *fiber.Ctx, url, anonymousID string, accountID int64) {
	e := event{
		kind:        kindPageview,
		url:         clean(strings.Clone(url), maxURL),
		anonymousID: clean(strings.Clone(anonymousID), maxAnonymousID),
		accountID:   accountID,
		userAgent:   clean(string(c.Request().Header.UserAgent()), maxUserAgent),
		at:          time.Now().UTC(),
	}
	if xff := c.Request().Header.Peek(fiber.HeaderXForwardedFor); len(xff) > 0 {
		e.remoteAddr = clean(string(xff), maxRemoteAddr)
	} else {
		e.remoteAddr = clean(c.Context().RemoteIP().String(), maxRemoteAddr)
	}
	a.record(server.Tenant(c), e)
}

// LinkEvent records the arrival on url from a campaign link (a mail's
// mb_cd/pr_cd with em_cd, or an ad's ad_cd), as the /clientevent/linkevent
// beacon does; unknown codes become NULL when the row is written.
// Its strings are copied, as Pageview's are.
func (a *App) LinkEvent(c *fiber.Ctx, url, anonymousID, mbCd, prCd, emCd, adCd string) {
	cp := strings.Clone
	a.record(server.Tenant(c), event{
		kind:        kindLinkEvent,
		url:         clean(cp(url), maxURL),
		anonymousID: clean(cp(anonymousID), maxAnonymousID),
		mbCd:        code(cp(mbCd)), prCd: code(cp(prCd)), emCd: code(cp(emCd)), adCd: code(cp(adCd)),
		at: time.Now().UTC(),
	})
}

// parse reads the query of a beacon; ok is false when no row is due (no url).
func parse(c *fiber.Ctx, k kind) (event, bool) {
	args := c.Context().QueryArgs()
	if !args.Has("url") {
		return event{}, false
	}
	q := func(name string) string { return string(args.Peek(name)) }
	e := event{
		kind:        k,
		url:         clean(q("url"), maxURL),
		anonymousID: clean(q("anonymous_id"), maxAnonymousID),
		at:          time.Now().UTC(),
	}
	switch k {
	case kindLinkEvent:
		e.mbCd = code(q("mb_cd"))
		e.prCd = code(q("pr_cd"))
		e.emCd = code(q("em_cd"))
		e.adCd = code(q("ad_cd"))
	default:
		e.accountID = accountID(q("client_event_id"))
	}
	switch k {
	case kindPageview:
		if w, err := strconv.ParseInt(strings.TrimSpace(q("pageWidth")), 10, 32); err == nil {
			e.pageWidth, e.hasWidth = int32(w), true
		}
		// Header values point into fasthttp's reused buffers: copy them, the
		// event outlives the request.
		if xff := c.Request().Header.Peek(fiber.HeaderXForwardedFor); len(xff) > 0 {
			e.remoteAddr = clean(string(xff), maxRemoteAddr)
		} else {
			e.remoteAddr = clean(c.Context().RemoteIP().String(), maxRemoteAddr)
		}
		e.userAgent = clean(string(c.Request().Header.UserAgent()), maxUserAgent)
	case kindAjaxError:
		e.label = clean(q("error_id"), maxLabel)
	case kindButtonClick:
		e.label = clean(q("button_id"), maxLabel)
	}
	return e, true
}

// accountID accepts only a plain positive decimal (the client sends "null"
// or "undefined" when it has nothing).
func accountID(s string) int64 {
	if s == "" || len(s) > 18 {
		return 0
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// code keeps a lookup code only if it could match a column value; a longer one
// can match nothing, so it is dropped rather than cut.
func code(s string) string {
	if s == "" || utf8.RuneCountInString(s) > maxCode {
		return ""
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// clean makes s storable in a varchar(max): valid UTF-8, no NUL, at most max
// characters.
func clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i]
		}
		n++
	}
	return s
}

// record queues one event for t; it never blocks on the database. A full
// buffer drops the event (counted).
func (a *App) record(t *directory.Tenant, e event) {
	b := a.bufferFor(t)
	if b == nil {
		a.dropped.WithLabelValues("closed").Inc()
		return
	}
	b.mu.Lock()
	b.tenant = t
	if len(b.rows)+len(b.retry) >= a.bufferSize {
		b.mu.Unlock()
		a.dropped.WithLabelValues("buffer_full").Inc()
		return
	}
	if b.overQuota(t.Plan.EventsPerMonth, e.at) {
		b.mu.Unlock()
		a.dropped.WithLabelValues("over_quota").Inc()
		return
	}
	if len(b.rows)+len(b.retry) == 0 {
		b.oldest = a.now()
	}
	b.rows = append(b.rows, e)
	full := len(b.rows) >= a.batch
	b.mu.Unlock()
	a.received.Inc()
	a.usage.ClientEvent(t.ID)
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

func (a *App) bufferFor(t *directory.Tenant) *buffer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	b := a.buffers[t.ID]
	if b == nil {
		b = &buffer{tenant: t}
		a.buffers[t.ID] = b
	}
	return b
}

// run flushes on every tick or kick until Close.
func (a *App) run() {
	defer close(a.done)
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
			a.flushAll(context.Background(), false, false)
		case <-a.kick:
			a.flushAll(context.Background(), false, false)
		}
	}
}

// flushAll starts a flush for every tenant whose rows are due (all of
// them with all); with wait it returns when they are done.
func (a *App) flushAll(ctx context.Context, wait, all bool) {
	a.mu.Lock()
	bufs := make([]*buffer, 0, len(a.buffers))
	for _, b := range a.buffers {
		bufs = append(bufs, b)
	}
	a.mu.Unlock()
	now := a.now()
	var wg sync.WaitGroup
	for _, b := range bufs {
		b.mu.Lock()
		pending := len(b.rows)+len(b.retry) > 0
		due := pending && (all || a.due(b, now))
		busy := b.flushing
		if due && !busy {
			b.flushing = true
		}
		b.mu.Unlock()
		if !due || busy {
			continue
		}
		wg.Add(1)
		a.sem <- struct{}{}
		go func() {
			defer func() { <-a.sem; wg.Done() }()
			a.flushTenant(ctx, b)
		}()
	}
	if wait {
		wg.Wait()
	}
}

// due reports whether b's pending rows are to be written now: a full batch,
// or rows older than ColdFlushInterval, or a tenant with a warm connection.
// Called with b.mu held.
func (a *App) due(b *buffer, now time.Time) bool {
	if len(b.rows) >= a.batch || now.Sub(b.oldest) >= a.coldEvery {
		return true
	}
	w, ok := a.db.(warmer)
	return !ok || w.Warm(b.tenant.ID)
}

// flushTenant writes b's pending rows in batches of at most BatchSize.
func (a *App) flushTenant(ctx context.Context, b *buffer) {
	defer func() {
		b.mu.Lock()
		b.flushing = false
		b.mu.Unlock()
	}()
	for {
		b.mu.Lock()
		t := b.tenant
		var rows []event
		retrying := len(b.retry) > 0
		if retrying {
			rows, b.retry = b.retry, nil
		} else {
			n := min(len(b.rows), a.batch)
			rows = b.rows[:n:n]
			b.rows = b.rows[n:]
			if len(b.rows) == 0 {
				b.rows = nil
			}
		}
		b.mu.Unlock()
		if len(rows) == 0 {
			return
		}
		n, err := a.write(ctx, b, t, rows)
		if err != nil {
			a.flushErrs.Inc()
			b.mu.Lock()
			b.attempts++
			giveUp := b.attempts >= 3 || ctx.Err() != nil
			if giveUp {
				b.attempts = 0
			} else {
				b.retry = rows
			}
			b.mu.Unlock()
			if giveUp {
				a.dropped.WithLabelValues("write_failed").Add(float64(len(rows)))
			}
			a.log.Warn("client events not written", "tenant", t.Slug, "rows", len(rows), "dropped", giveUp, "err", err)
			return
		}
		b.mu.Lock()
		b.attempts = 0
		b.mu.Unlock()
		if n < 0 {
			a.dropped.WithLabelValues("logging_off").Add(float64(len(rows)))
		} else {
			a.written.Add(float64(n))
		}
	}
}

// Close stops the flusher and writes every buffered row, waiting at most until
// ctx is done. Events recorded after Close are dropped.
func (a *App) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done
	// Let any in-flight flush finish, then write the rest (retries included)
	// until everything is written or given up.
	for {
		a.flushAll(ctx, true, true)
		if !a.pending() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("analytics close: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (a *App) pending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.buffers {
		b.mu.Lock()
		p := len(b.rows)+len(b.retry) > 0 || b.flushing
		b.mu.Unlock()
		if p {
			return true
		}
	}
	return false
}

// Staging table: one per connection, emptied at commit. IF NOT EXISTS keeps
// this correct on pooled connections that already have it.
const createStage = `CREATE TEMP TABLE IF NOT EXISTS clientevent_stage (
    kind            smallint NOT NULL,
    account_id      bigint,
    mb_cd           text,
    pr_cd           text,
    em_cd           text,
    ad_cd           text,
    anonymous_id    text,
    url             text NOT NULL,
    page_width      integer,
    remote_addr     text,
    http_user_agent text,
    label           text,
    created         timestamptz NOT NULL
) ON COMMIT DELETE ROWS`

var stageColumns = []string{"kind", "account_id", "mb_cd", "pr_cd", "em_cd", "ad_cd", "anonymous_id",
	"url", "page_width", "remote_addr", "http_user_agent", "label", "created"}

// Each kind's statement inserts its events and, in the same statement, adds
// them to the insight rollups (tenant migration 00009): counts per UTC day
// and key, and the day's distinct visitors. It answers how many events it
// inserted. Rollup rows are upserted in key order, so two replicas flushing
// the same tenant wait for each other instead of deadlocking.
const rollupUpsert = ` ON CONFLICT (metric, day, key) DO UPDATE SET count = insight_daily.count + EXCLUDED.count`

const insertPageview = `WITH ins AS (
  INSERT INTO pageview (account_id, anonymous_id, url, page_width, remote_addr, http_user_agent, created_date_time)
  SELECT a.id, s.anonymous_id, s.url, s.page_width, s.remote_addr, s.http_user_agent, s.created
  FROM clientevent_stage s LEFT JOIN account a ON a.id = s.account_id
  WHERE s.kind = 1
  RETURNING account_id, anonymous_id, url, (created_date_time AT TIME ZONE 'UTC')::date AS day
), pages AS (
  INSERT INTO insight_daily (metric, day, key, count)
  SELECT 'pageview', day, insight_path(url), count(*) FROM ins GROUP BY 2, 3 ORDER BY 2, 3` + rollupUpsert + `
), seen AS (
  INSERT INTO insight_visitor (day, visitor)
  SELECT DISTINCT day, insight_visitor_of(account_id, anonymous_id) FROM ins WHERE insight_visitor_of(account_id, anonymous_id) IS NOT NULL
  ORDER BY 1, 2 ON CONFLICT DO NOTHING RETURNING day
), visitors AS (
  INSERT INTO insight_daily (metric, day, key, count)
  SELECT 'visitor', day, '', count(*) FROM seen GROUP BY day ORDER BY day` + rollupUpsert + `
)
SELECT count(*) FROM ins`

const insertAjaxError = `WITH ins AS (
  INSERT INTO ajax_error (account_id, anonymous_id, url, error_id, created_date_time)
  SELECT a.id, s.anonymous_id, s.url, s.label, s.created
  FROM clientevent_stage s LEFT JOIN account a ON a.id = s.account_id
  WHERE s.kind = 2
  RETURNING url, error_id, (created_date_time AT TIME ZONE 'UTC')::date AS day
), roll AS (
  INSERT INTO insight_daily (metric, day, key, count)
  SELECT 'ajax_error', day, insight_path(url) || ' ' || left(error_id, 100), count(*) FROM ins GROUP BY 2, 3 ORDER BY 2, 3` + rollupUpsert + `
)
SELECT count(*) FROM ins`

const insertButtonClick = `WITH ins AS (
  INSERT INTO button_click (account_id, anonymous_id, url, button_id, created_date_time)
  SELECT a.id, s.anonymous_id, s.url, s.label, s.created
  FROM clientevent_stage s LEFT JOIN account a ON a.id = s.account_id
  WHERE s.kind = 3
  RETURNING button_id, (created_date_time AT TIME ZONE 'UTC')::date AS day
), roll AS (
  INSERT INTO insight_daily (metric, day, key, count)
  SELECT 'button_click', day, left(button_id, 100), count(*) FROM ins GROUP BY 2, 3 ORDER BY 2, 3` + rollupUpsert + `
)
SELECT count(*) FROM ins`

const insertLinkEvent = `WITH ins AS (
  INSERT INTO link_event (account_id, prospect_id, anonymous_id, email_id, ad_id, url, created_date_time)
  SELECT m.account_id, p.id, s.anonymous_id, e.id, d.id, s.url, s.created
  FROM clientevent_stage s
  LEFT JOIN member m ON m.mb_cd = s.mb_cd
  LEFT JOIN prospect p ON p.pr_cd = s.pr_cd
  LEFT JOIN email e ON e.em_cd = s.em_cd
  LEFT JOIN ad d ON d.ad_cd = s.ad_cd
  WHERE s.kind = 4
  RETURNING account_id, prospect_id, email_id, ad_id, (created_date_time AT TIME ZONE 'UTC')::date AS day
), roll AS (
  INSERT INTO insight_daily (metric, day, key, count)
  SELECT CASE WHEN i.account_id IS NOT NULL THEN 'link_member' WHEN i.prospect_id IS NOT NULL THEN 'link_prospect' ELSE 'link_other' END,
         i.day, CASE WHEN e.em_cd IS NOT NULL THEN 'email:' || e.em_cd WHEN d.ad_cd IS NOT NULL THEN 'ad:' || d.ad_cd ELSE '' END, count(*)
  FROM ins i LEFT JOIN email e ON e.id = i.email_id LEFT JOIN ad d ON d.id = i.ad_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3` + rollupUpsert + `
)
SELECT count(*) FROM ins`

const selectFlag = `SELECT log_client_events FROM clientevent_configuration WHERE id = 1`

// selectMonthEvents counts the events recorded since $1 (a month's first
// day) from the rollups, which count every event row (visitor is not one).
const selectMonthEvents = `SELECT coalesce(sum(count), 0)::bigint FROM insight_daily WHERE metric <> 'visitor' AND day >= $1::date`

// quotaDue reports whether the batch being written should re-read the
// month's count, and for which month.
func (a *App) quotaDue(b *buffer, t *directory.Tenant) (time.Time, bool) {
	if t.Plan.EventsPerMonth == nil {
		return time.Time{}, false
	}
	now := a.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	m := monthOf(now)
	if !m.Equal(b.quotaMonth) {
		b.quotaMonth, b.quotaUsed, b.quotaAt = m, 0, time.Time{}
	}
	// Over the estimate (rows accepted before the first read, or by a
	// replica that counted late): every batch re-reads until it fits.
	return m, b.quotaAt.IsZero() || now.Sub(b.quotaAt) >= a.quotaEvery || b.quotaUsed > *t.Plan.EventsPerMonth
}

// write stores rows in t's database and returns how many were written, or -1
// when the tenant's logging is off (the rows are discarded).
func (a *App) write(ctx context.Context, b *buffer, t *directory.Tenant, rows []event) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var written int64 = -1
	month, refresh := a.quotaDue(b, t)
	var monthCount int64 // this month's events in the database before this batch
	over := 0            // rows of the batch past the quota, not written
	err := a.db.Do(ctx, t, func(conn *pgxpool.Conn) error {
		on, err := a.loggingOn(ctx, b, conn)
		if err != nil {
			return err
		}
		if !on {
			return nil
		}
		written = 0
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows := rows
			if refresh {
				if err := tx.QueryRow(ctx, selectMonthEvents, month).Scan(&monthCount); err != nil {
					return fmt.Errorf("count this month's events: %w", err)
				}
				fit := max(*t.Plan.EventsPerMonth-monthCount, 0)
				if int64(len(rows)) > fit {
					over = len(rows) - int(fit)
					rows = rows[:fit]
				}
				if len(rows) == 0 {
					return nil
				}
			}
			if _, err := tx.Exec(ctx, createStage); err != nil {
				return fmt.Errorf("stage: %w", err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"clientevent_stage"}, stageColumns, &rowSource{rows: rows, i: -1}); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			var counts [4]bool
			for _, r := range rows {
				counts[r.kind-1] = true
			}
			batch := &pgx.Batch{}
			for i, q := range []string{insertPageview, insertAjaxError, insertButtonClick, insertLinkEvent} {
				if counts[i] {
					batch.Queue(q).QueryRow(func(row pgx.Row) error {
						var n int64
						err := row.Scan(&n)
						written += n
						return err
					})
				}
			}
			return tx.SendBatch(ctx, batch).Close()
		})
	})
	if err != nil {
		return 0, fmt.Errorf("write %d client events: %w", len(rows), err)
	}
	if refresh && written >= 0 {
		if over > 0 {
			a.dropped.WithLabelValues("over_quota").Add(float64(over))
		}
		// The database's count now, plus the rows still held here.
		b.mu.Lock()
		if b.quotaMonth.Equal(month) {
			b.quotaUsed = monthCount + written + int64(len(b.rows)+len(b.retry))
			b.quotaAt = a.now()
		}
		b.mu.Unlock()
	}
	return written, nil
}

// loggingOn reads (and caches) the tenant's switch. A missing row means off.
func (a *App) loggingOn(ctx context.Context, b *buffer, conn *pgxpool.Conn) (bool, error) {
	b.mu.Lock()
	if b.flagRead && time.Since(b.flagAt) < a.flagTTL {
		on := b.flag
		b.mu.Unlock()
		return on, nil
	}
	b.mu.Unlock()
	var on bool
	err := conn.QueryRow(ctx, selectFlag).Scan(&on)
	if errors.Is(err, pgx.ErrNoRows) {
		on, err = false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read logging switch: %w", err)
	}
	b.mu.Lock()
	b.flag, b.flagAt, b.flagRead = on, time.Now(), true
	b.mu.Unlock()
	return on, nil
}

// rowSource feeds events to CopyFrom without building [][]any up front.
type rowSource struct {
	rows []event
	i    int
	vals [13]any
}

func (s *rowSource) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *rowSource) Err() error { return nil }

func (s *rowSource) Values() ([]any, error) {
	e := &s.rows[s.i]
	v := &s.vals
	v[0] = int16(e.kind)
	v[1] = nullInt(e.accountID)
	v[2], v[3], v[4], v[5] = nullStr(e.mbCd), nullStr(e.prCd), nullStr(e.emCd), nullStr(e.adCd)
	v[6] = nullStr(e.anonymousID)
	v[7] = e.url
	if e.hasWidth {
		v[8] = e.pageWidth
	} else {
		v[8] = nil
	}
	v[9], v[10] = nullStr(e.remoteAddr), nullStr(e.userAgent)
	v[11] = e.label
	v[12] = e.at
	return v[:], nil
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
