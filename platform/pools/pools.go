// Package pools opens one small pgx pool per tenant database, lazily, and
// keeps every tenant's connections under one budget per data-plane replica.
//
// The budget counts physical connections exactly: every socket the tenant
// pools dial takes a slot and gives it back when it closes.
//
// Under budget pressure the budget is a cache of warm connections, because
// each new one costs a login (a SCRAM handshake and a new backend):
//   - A released connection always goes back to its pool: a hot tenant keeps
//     its connections even while others wait.
//   - A dial that finds the budget full closes the coldest idle connection
//     and takes its slot. Coldness is frequency, not recency: a pool's k-th
//     connection is as warm as how often, lately, the pool had k lent out
//     at once (a count decayed with a half-life of 30s). Under skewed
//     traffic the tenants seen once in a while then pass through one slot
//     after another while the frequent ones keep theirs, where evicting the
//     least recently used would let each passing tenant push out a frequent
//     one. A hot tenant's spare connection can still go before a warm
//     tenant's only one.
//   - With nothing idle the dial queues; the queue is served oldest first by
//     freed slots and by an evictor that, while anyone waits, closes the
//     coldest connection as soon as one is idle. A queued dial whose own pool
//     gets an idle connection takes that one instead.
//   - Only a few logins run at once (Budget/10, at least 2): a storm of them
//     would hold the slots idle connections need, and then every request
//     would log in.
package pools

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
)

// ErrBudgetExhausted is returned by Acquire when no connection could be had
// within the acquire timeout; the caller answers 503.
var ErrBudgetExhausted = errors.New("pools: no database connection available in time")

// ErrNotServing is returned for a tenant that is not active, or that was
// suspended or deleted after the caller looked it up.
var ErrNotServing = errors.New("pools: tenant is not serving")

// errBudgetWait ends a dial that waited for a budget slot in vain.
var errBudgetWait = errors.New("connection budget full")

// errYield ends a queued dial whose pool got an idle connection meanwhile;
// Acquire then takes that connection.
var errYield = errors.New("an idle connection of the pool is free")

// Query exec modes accepted in Options.QueryExecMode (pgx's
// default_query_exec_mode).
var queryExecModes = map[string]bool{
	"": true, "cache_statement": true, "cache_describe": true, "describe_exec": true, "exec": true, "simple_protocol": true,
}

// Options configures a Manager.
type Options struct {
	// Secrets holds each tenant's bundle (Tenant.SecretsRef) with its
	// database password. A *secrets.Cache in front is invalidated when the
	// password is refused.
	Secrets secrets.Store
	// MaxConns is the size of one tenant's pool (default 4).
	MaxConns int32
	// Budget caps open connections across all tenants (default 50).
	Budget int32
	// IdleTimeout closes a connection, and a whole pool, unused this long
	// (default 5m).
	IdleTimeout time.Duration
	// AcquireTimeout is the longest Acquire waits (default 2s).
	AcquireTimeout time.Duration
	// QueryExecMode is pgx's default_query_exec_mode; empty keeps pgx's
	// default. Behind PgBouncer in transaction mode use "exec" or
	// "simple_protocol".
	QueryExecMode string
	// ConnParams are extra libpq parameters in URL query form, for
	// example "sslmode=disable&connect_timeout=5".
	ConnParams string
	// StatementTimeout is set as statement_timeout and
	// idle_in_transaction_session_timeout of every tenant connection
	// (default 15s; negative: the server's own, e.g. behind a PgBouncer that
	// refuses startup parameters), so a query or an open
	// transaction ends on the database's side too when its caller's
	// deadline was missed.
	StatementTimeout time.Duration
	// Tracer, when set, traces every query of the tenant connections
	// (tests count round trips with pgtest.RoundTrips).
	Tracer pgx.QueryTracer
	// Metrics receives the pool metrics; nil means not collected.
	Metrics prometheus.Registerer
	Log     *slog.Logger
}

// Manager owns the tenant pools.
type Manager struct {
	o       Options
	log     *slog.Logger
	budget  *budget
	metrics *metrics

	mu      sync.Mutex
	pools   map[int64]*tenantPool
	retired map[int64]int64 // tenant id -> newest generation that must not reopen
	closed  bool

	closing sync.WaitGroup // pools closing in the background
	bg      sync.WaitGroup // janitor and evictor
	stop    chan struct{}
	kick    chan struct{} // wakes the evictor; buffered 1
	dialing chan struct{} // permits to log in, see dialPermit
	opened  atomic.Int64  // connections established (logins)
	epoch   time.Time     // heats count half-lives since
}

// tenantPool is one tenant's pool at one generation.
type tenantPool struct {
	tenantID   int64
	slug       string
	gen        int64
	secretsRef string

	ready chan struct{} // closed once pool or err is set
	pool  *pgxpool.Pool
	err   error

	password atomic.Pointer[string]
	lastUsed atomic.Int64 // unix nanoseconds
	// requested is when a caller other than a background pass last
	// acquired (unix nanoseconds), see RequestedWithin.
	requested atomic.Int64
	// needed[k] counts, decayed, the times the pool had k+1 connections lent
	// out at once: how warm its (k+1)-th connection is. Connections are
	// reused last-in first-out, so the highest-ranked one is the coldest.
	needed  []heat
	retired atomic.Bool
	reload  sync.Mutex // one password reload at a time
}

// New returns a Manager. Call CloseAll when done.
func New(o Options) (*Manager, error) {
	if o.Secrets == nil {
		return nil, errors.New("pools: no secrets store")
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.Budget <= 0 {
		o.Budget = 50
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.AcquireTimeout <= 0 {
		o.AcquireTimeout = 2 * time.Second
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = 15 * time.Second
	}
	if !queryExecModes[o.QueryExecMode] {
		return nil, fmt.Errorf("pools: unknown query exec mode %q", o.QueryExecMode)
	}
	if _, err := url.ParseQuery(o.ConnParams); err != nil {
		return nil, fmt.Errorf("pools: connection parameters: %v", err)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	m := &Manager{
		o:       o,
		log:     o.Log,
		budget:  newBudget(o.Budget),
		pools:   map[int64]*tenantPool{},
		retired: map[int64]int64{},
		stop:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		dialing: make(chan struct{}, max(2, o.Budget/10)),
		epoch:   time.Now(),
	}
	var err error
	if m.metrics, err = newMetrics(o.Metrics, m); err != nil {
		return nil, err
	}
	m.bg.Add(2)
	go m.janitor()
	go m.evictor()
	return m, nil
}

// deadlineKey carries an Acquire's deadline into the dial, whose own
// context outlives the caller's (pgxpool finishes connects in the background).
type deadlineKey struct{}

// Acquire returns a connection to t's database, opening its pool on first
// use. It waits at most the acquire timeout, then returns
// ErrBudgetExhausted. Release the connection when done.
func (m *Manager) Acquire(ctx context.Context, t *directory.Tenant) (*pgxpool.Conn, error) {
	if t == nil || !t.Serving() {
		return nil, ErrNotServing
	}
	start := time.Now()
	deadline := start.Add(m.o.AcquireTimeout)
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	actx = context.WithValue(actx, deadlineKey{}, deadline)

	conn, err := m.acquire(actx, t)
	m.metrics.observeAcquire(time.Since(start))
	if err == nil {
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, errBudgetWait) || errors.Is(err, context.DeadlineExceeded) {
		m.metrics.exhausted()
		return nil, ErrBudgetExhausted
	}
	return nil, err
}

func (m *Manager) acquire(ctx context.Context, t *directory.Tenant) (*pgxpool.Conn, error) {
	retried := false
	for {
		tp, err := m.poolFor(ctx, t)
		if err != nil {
			return nil, err
		}
		now := time.Now().UnixNano()
		tp.lastUsed.Store(now)
		if !directory.IsBackground(ctx) {
			tp.requested.Store(now)
		}
		release, err := m.dialPermit(ctx, tp)
		if err != nil {
			return nil, err
		}
		conn, err := tp.pool.Acquire(ctx)
		for errors.Is(err, errYield) && ctx.Err() == nil {
			// Our queued dial gave way to an idle connection of this pool.
			conn, err = tp.pool.Acquire(ctx)
		}
		if err != nil && isAuthFailure(err) {
			// The password was rotated: forget the cached one, reload, retry once.
			if rerr := m.reloadPassword(ctx, tp); rerr != nil {
				return nil, rerr
			}
			conn, err = tp.pool.Acquire(ctx)
		}
		release()
		if err != nil && tp.retired.Load() && !retried {
			retried = true
			continue // closed under us by a suspension or a new generation
		}
		if err != nil {
			return nil, fmt.Errorf("pools: tenant %s: %w", t.Slug, err)
		}
		if !directory.IsBackground(ctx) { // a worker's visit does not warm a connection
			st := tp.pool.Stat()
			tp.markNeeded(st.AcquiredConns()+st.ConstructingConns(), m.now())
		}
		return conn, nil
	}
}

// dialPermit waits, when tp has no idle connection and room to open one,
// for one of the few permits to log in at once. Logins are costly (a SCRAM
// handshake, a new backend) and each holds a budget slot: a storm of them
// would leave no room for idle connections, so every request would log in.
func (m *Manager) dialPermit(ctx context.Context, tp *tenantPool) (release func(), err error) {
	st := tp.pool.Stat()
	if st.IdleConns() > 0 || st.TotalConns() >= st.MaxConns() {
		return func() {}, nil
	}
	select {
	case m.dialing <- struct{}{}:
		return func() { <-m.dialing }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// now is the time in heat half-lives since m began.
func (m *Manager) now() float64 { return float64(time.Since(m.epoch)) / float64(heatHalfLife) }

// markNeeded records that n connections of tp are lent out at now.
func (tp *tenantPool) markNeeded(n int32, now float64) {
	for k := range min(int(n), len(tp.needed)) {
		tp.needed[k].add(now)
	}
}

// coldestIdle reports how warm tp's coldest connection is, if that
// connection is idle; ok is false when tp has no idle connection.
func (tp *tenantPool) coldestIdle() (warmth float64, ok bool) {
	st := tp.pool.Stat()
	if st.IdleConns() == 0 {
		return 0, false
	}
	rank := min(int(st.AcquiredConns()+st.IdleConns()), len(tp.needed))
	return tp.needed[rank-1].score(), true
}

// Do runs fn with a connection to t's database and releases it afterwards.
func (m *Manager) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	conn, err := m.Acquire(ctx, t)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
}

func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

// poolFor returns t's pool, opening it, or replacing one of an older
// generation, as needed.
func (m *Manager) poolFor(ctx context.Context, t *directory.Tenant) (*tenantPool, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("pools: closed")
	}
	if gen, ok := m.retired[t.ID]; ok && t.Generation <= gen {
		m.mu.Unlock()
		return nil, ErrNotServing
	}
	tp := m.pools[t.ID]
	var old *tenantPool
	if tp != nil && t.Generation > tp.gen {
		old, tp = tp, nil
		delete(m.pools, t.ID)
	}
	created := false
	if tp == nil {
		tp = &tenantPool{tenantID: t.ID, slug: t.Slug, gen: t.Generation, secretsRef: t.SecretsRef,
			ready: make(chan struct{}), needed: newHeats(m.o.MaxConns)}
		tp.lastUsed.Store(time.Now().UnixNano())
		m.pools[t.ID] = tp
		created = true
	}
	m.mu.Unlock()

	if old != nil {
		m.retire(old, "generation")
	}
	if created {
		tp.pool, tp.err = m.open(ctx, tp, t)
		close(tp.ready)
	} else {
		select {
		case <-tp.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if tp.err != nil {
		m.mu.Lock()
		if m.pools[t.ID] == tp {
			delete(m.pools, t.ID) // the next caller tries again
		}
		m.mu.Unlock()
		return nil, tp.err
	}
	return tp, nil
}

// open builds (without connecting) the pool of one tenant generation.
func (m *Manager) open(ctx context.Context, tp *tenantPool, t *directory.Tenant) (*pgxpool.Pool, error) {
	b, err := secrets.LoadBundle(ctx, m.o.Secrets, t.SecretsRef)
	if err != nil {
		return nil, fmt.Errorf("pools: tenant %s: %w", t.Slug, err)
	}
	tp.password.Store(&b.DBPassword)

	q, _ := url.ParseQuery(m.o.ConnParams)
	if m.o.QueryExecMode != "" {
		q.Set("default_query_exec_mode", m.o.QueryExecMode)
	}
	if !q.Has("application_name") {
		q.Set("application_name", "swa-dataplane")
	}
	if st := m.o.StatementTimeout; st > 0 {
		ms := strconv.FormatInt(st.Milliseconds(), 10)
		for _, p := range []string{"statement_timeout", "idle_in_transaction_session_timeout"} {
			if !q.Has(p) {
				q.Set(p, ms)
			}
		}
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(t.DBRole),
		Host:     net.JoinHostPort(t.DBHost, strconv.Itoa(t.DBPort)),
		Path:     "/" + t.DBName,
		RawQuery: q.Encode(),
	}
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("pools: tenant %s: connection config: %w", t.Slug, err)
	}
	cfg.MaxConns = m.o.MaxConns
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = m.o.IdleTimeout
	cfg.HealthCheckPeriod = min(max(m.o.IdleTimeout/2, 50*time.Millisecond), time.Minute)
	// A query whose context ends is cancelled on the server (a cancel
	// request) rather than by cutting the socket, so the connection goes
	// back to its pool at once instead of costing a new login; the socket
	// is cut only if the server has not answered the cancel within a second.
	cfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: time.Second}
	}
	if m.o.Tracer != nil {
		cfg.ConnConfig.Tracer = m.o.Tracer
	}
	cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		cc.Password = *tp.password.Load()
		return nil
	}
	cfg.AfterConnect = func(context.Context, *pgx.Conn) error {
		m.opened.Add(1)
		m.metrics.connOpened()
		return nil
	}
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, pooled := ctx.Value(deadlineKey{}).(time.Time); !pooled {
			// Every pool dial comes from Acquire; one without its deadline
			// is pgconn's cancel request for a query whose context ended.
			// The server closes it at once and it holds no session, so it
			// takes no slot: waiting for one would hold the very connection
			// it is freeing.
			return dial(ctx, network, addr)
		}
		if err := m.takeSlot(ctx, tp); err != nil {
			return nil, err
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			m.budget.release()
			return nil, err
		}
		return &countedConn{Conn: c, release: m.budget.release}, nil
	}
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, fmt.Errorf("pools: tenant %s: %w", t.Slug, err)
	}
	m.metrics.opened()
	return pool, nil
}

// reloadPassword forgets the cached bundle and reads it again.
func (m *Manager) reloadPassword(ctx context.Context, tp *tenantPool) error {
	tp.reload.Lock()
	defer tp.reload.Unlock()
	if inv, ok := m.o.Secrets.(interface{ Invalidate(name string) }); ok {
		inv.Invalidate(tp.secretsRef)
	}
	b, err := secrets.LoadBundle(ctx, m.o.Secrets, tp.secretsRef)
	if err != nil {
		return fmt.Errorf("pools: tenant %s: reload password: %w", tp.slug, err)
	}
	tp.password.Store(&b.DBPassword)
	m.log.Info("pools: reloaded a rotated database password", "tenant", tp.slug)
	return nil
}

// takeSlot reserves one connection of the budget for a dial of tp, closing
// the coldest idle connection to make room, or
// queueing for a slot until the acquiring caller's deadline. It returns
// errYield when the budget is full and tp has an idle connection, or gets
// one while the dial is queued.
func (m *Manager) takeSlot(ctx context.Context, tp *tenantPool) error {
	deadline, _ := ctx.Value(deadlineKey{}).(time.Time)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if m.budget.tryTake() {
		return nil
	}
	if tp.pool.Stat().IdleConns() > 0 {
		// One of ours came back since pgxpool chose to dial (pgconn also
		// dials again after a refused TLS attempt): use it, close nobody's.
		return errYield
	}
	for m.evictIdle() {
		if m.budget.tryTake() {
			return nil
		}
	}
	m.metrics.budgetWait()
	w := m.budget.enqueue(tp)
	m.wakeEvictor()
	select {
	case <-w.granted:
		return nil
	case <-w.yield:
		return errYield
	case <-ctx.Done():
		m.budget.abandon(w)
		return errBudgetWait
	}
}

// wakeEvictor tells the evictor that a dial has queued.
func (m *Manager) wakeEvictor() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// evictPoll is how often the evictor looks for idle connections while dials
// wait and none was idle: connections go idle without telling it (a
// release, or a dial that finished after its caller gave up).
const evictPoll = 2 * time.Millisecond

// evictor serves the queue of dials waiting for a budget slot. While any
// waits, it first lets a waiter whose own pool has an idle connection take
// that one, then closes the coldest idle connection, whose slot goes to the
// oldest waiter.
func (m *Manager) evictor() {
	defer m.bg.Done()
	poll := time.NewTimer(evictPoll)
	defer poll.Stop()
	for {
		var tick <-chan time.Time
		if m.budget.hasWaiters() {
			m.budget.yieldTo(func(tp *tenantPool) int32 { return tp.pool.Stat().IdleConns() })
			if m.budget.hasWaiters() && m.evictIdle() {
				continue
			}
			poll.Reset(evictPoll)
			tick = poll.C
		}
		select {
		case <-m.stop:
			return
		case <-m.kick:
		case <-tick:
		}
	}
}

// evictIdle closes the coldest idle connection, and reports whether there
// was one; pools with a queued dial keep theirs for it. Each pool's
// connections are ranked by use (its k-th connection is as warm as how
// often, lately, it had k lent out at once), so a hot tenant's spare
// connection goes before a warm tenant's only one, and a cold tenant's only
// one before either.
func (m *Manager) evictIdle() bool {
	type candidate struct {
		tp     *tenantPool
		warmth float64
	}
	m.mu.Lock()
	pools := make([]*tenantPool, 0, len(m.pools))
	for _, tp := range m.pools {
		if isReady(tp) && tp.pool != nil {
			pools = append(pools, tp)
		}
	}
	m.mu.Unlock()
	var candidates []candidate
	for _, tp := range pools {
		if m.budget.queued(tp) {
			continue // its idle connection goes to its own queued dial
		}
		if at, ok := tp.coldestIdle(); ok {
			candidates = append(candidates, candidate{tp, at})
		}
	}
	slices.SortFunc(candidates, func(a, b candidate) int { return cmp.Compare(a.warmth, b.warmth) })
	for _, c := range candidates {
		idle := c.tp.pool.AcquireAllIdle(context.Background())
		if len(idle) == 0 {
			continue // taken meanwhile
		}
		// Idle connections come most recently used first: close the last,
		// and put the others back in their order.
		victim := idle[len(idle)-1].Hijack()
		for i := len(idle) - 2; i >= 0; i-- {
			idle[i].Release()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = victim.Close(ctx) // closing the socket frees its slot
		cancel()
		m.metrics.evicted("budget")
		return true
	}
	return false
}

func isReady(tp *tenantPool) bool {
	select {
	case <-tp.ready:
		return true
	default:
		return false
	}
}

// OnTenantChange is a directory.OnChange listener: a suspended or deleted
// tenant's pool closes (in-flight queries finish first), and the pool of an
// older generation is rebuilt on next use.
func (m *Manager) OnTenantChange(old, new *directory.Tenant) {
	switch {
	case new == nil && old != nil:
		m.closeTenant(old.ID, math.MaxInt64, "tenant")
	case new != nil && !new.Serving():
		m.closeTenant(new.ID, new.Generation, "tenant")
	}
}

// Close closes tenantID's pool; in-flight queries finish first.
func (m *Manager) Close(tenantID int64) { m.closeTenant(tenantID, 0, "closed") }

func (m *Manager) closeTenant(id, retireGen int64, reason string) {
	m.mu.Lock()
	tp := m.pools[id]
	delete(m.pools, id)
	if retireGen > m.retired[id] {
		m.retired[id] = retireGen
	}
	m.mu.Unlock()
	if tp != nil {
		m.retire(tp, reason)
	}
}

// retire closes a pool that is no longer in the map, in the background:
// pgxpool's Close waits for acquired connections to come back.
func (m *Manager) retire(tp *tenantPool, reason string) {
	tp.retired.Store(true)
	m.closing.Add(1)
	go func() {
		defer m.closing.Done()
		<-tp.ready
		if tp.pool != nil {
			tp.pool.Close()
			m.metrics.closedPool(reason)
		}
	}()
}

// janitor closes pools unused for the idle timeout.
func (m *Manager) janitor() {
	defer m.bg.Done()
	tick := time.NewTicker(min(max(m.o.IdleTimeout/4, 10*time.Millisecond), 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-m.o.IdleTimeout).UnixNano()
		var idle []*tenantPool
		m.mu.Lock()
		for id, tp := range m.pools {
			if isReady(tp) && tp.pool != nil && tp.lastUsed.Load() < cutoff && tp.pool.Stat().AcquiredConns() == 0 {
				delete(m.pools, id)
				idle = append(idle, tp)
			}
		}
		m.mu.Unlock()
		for _, tp := range idle {
			m.retire(tp, "idle")
		}
	}
}

// CloseAll closes every pool, waiting for in-flight queries, and stops the
// Manager; Acquire fails afterwards.
func (m *Manager) CloseAll() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	all := m.pools
	m.pools = map[int64]*tenantPool{}
	m.mu.Unlock()
	close(m.stop)
	m.bg.Wait()
	for _, tp := range all {
		m.retire(tp, "closed")
	}
	m.closing.Wait()
}

// Stats is a point-in-time view of the Manager.
type Stats struct {
	Pools        int   // open tenant pools
	Open         int32 // physical connections open (the budget's count)
	MaxOpen      int32 // the most ever open at once
	Budget       int32
	Acquired     int32 // connections lent out
	Idle         int32 // connections idle in pools
	Constructing int32 // connections being established
	Opened       int64 // connections established (logins) since New
}

// Warm reports whether tenantID's pool has an idle connection, so a query
// now would need no login. Work that can wait (analytics batches) waits
// for it rather than logging in to a cold tenant.
func (m *Manager) Warm(tenantID int64) bool {
	m.mu.Lock()
	tp := m.pools[tenantID]
	m.mu.Unlock()
	return tp != nil && isReady(tp) && tp.pool != nil && tp.pool.Stat().IdleConns() > 0
}

// RequestedWithin reports whether a connection to tenantID's database was
// acquired, other than by a background pass (directory.Background), within d: the tenant is being
// used, so a request may just have left work for the background workers.
func (m *Manager) RequestedWithin(tenantID int64, d time.Duration) bool {
	m.mu.Lock()
	tp := m.pools[tenantID]
	m.mu.Unlock()
	return tp != nil && time.Since(time.Unix(0, tp.requested.Load())) < d
}

// Stats returns the current Stats.
func (m *Manager) Stats() Stats {
	open, high := m.budget.counts()
	s := Stats{Open: open, MaxOpen: high, Budget: m.o.Budget, Opened: m.opened.Load()}
	m.mu.Lock()
	pools := make([]*tenantPool, 0, len(m.pools))
	for _, tp := range m.pools {
		if isReady(tp) && tp.pool != nil {
			pools = append(pools, tp)
		}
	}
	m.mu.Unlock()
	s.Pools = len(pools)
	for _, tp := range pools {
		st := tp.pool.Stat()
		s.Acquired += st.AcquiredConns()
		s.Idle += st.IdleConns()
		s.Constructing += st.ConstructingConns()
	}
	return s
}

// budget counts open physical connections against a maximum. A slot freed
// while dials wait is handed to the oldest waiter, so waiters are served in
// order and a newcomer cannot take a slot someone has waited for.
type budget struct {
	max     int32
	mu      sync.Mutex
	open    int32
	high    int32
	waiters []*slotWaiter // oldest first
}

type slotWaiter struct {
	pool    *tenantPool
	granted chan struct{}
	yield   chan struct{} // closed: take an idle connection of pool instead
	done    bool          // granted (under mu)
}

func newBudget(n int32) *budget { return &budget{max: n} }

// tryTake takes a slot if one is free.
func (b *budget) tryTake() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open < b.max {
		b.open++
		b.high = max(b.high, b.open)
		return true
	}
	return false
}

// enqueue adds a waiter of tp for the next freed slot.
func (b *budget) enqueue(tp *tenantPool) *slotWaiter {
	w := &slotWaiter{pool: tp, granted: make(chan struct{}), yield: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters = append(b.waiters, w)
	return w
}

// abandon removes a waiter that gave up; a slot granted meanwhile is
// passed on.
func (b *budget) abandon(w *slotWaiter) {
	b.mu.Lock()
	if !w.done {
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.release()
}

// release frees a slot, or hands it to the oldest waiter.
func (b *budget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		w.done = true
		close(w.granted)
		return
	}
	b.open--
}

// yieldTo removes from the queue, and tells to yield, the waiters whose
// pool has an idle connection (idle reports how many), oldest first and at
// most one per idle connection: they need no new connection.
func (b *budget) yieldTo(idle func(*tenantPool) int32) {
	b.mu.Lock()
	free := make(map[*tenantPool]int32, len(b.waiters))
	for _, w := range b.waiters {
		free[w.pool] = 0
	}
	b.mu.Unlock()
	// Pool stats take the pool's lock: asked outside ours.
	found := false
	for tp := range free {
		if n := idle(tp); n > 0 {
			free[tp], found = n, true
		}
	}
	if !found {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.waiters[:0]
	for _, w := range b.waiters {
		if free[w.pool] > 0 {
			free[w.pool]--
			close(w.yield)
			continue
		}
		kept = append(kept, w)
	}
	clear(b.waiters[len(kept):])
	b.waiters = kept
}

// queued reports whether a dial of tp waits for a slot.
func (b *budget) queued(tp *tenantPool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.waiters {
		if w.pool == tp {
			return true
		}
	}
	return false
}

// hasWaiters reports whether a dial waits for a slot.
func (b *budget) hasWaiters() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters) > 0
}

func (b *budget) counts() (open, high int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.high
}

// countedConn gives its budget slot back when it closes, however often
// Close is called.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
