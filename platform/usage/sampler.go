package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Execer writes the registry as its owner (the control plane's pool).
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Defaults of SamplerOptions.
const (
	DefaultSampleInterval = 10 * time.Minute
	DefaultFlushRetention = 7 * 24 * time.Hour
	DefaultSampleTimeout  = 2 * time.Minute
)

// SamplerOptions configures a Sampler.
type SamplerOptions struct {
	// DB is the registry, written as its owner. Required.
	DB Execer
	// DatabaseSizes returns the size in bytes of serving tenants' databases
	// by tenant id (provision.Service.DatabaseSizes). Required.
	DatabaseSizes func(ctx context.Context) (map[int64]int64, error)
	// Interval is how often the gauges are sampled (default
	// DefaultSampleInterval): every hour gets a sample, the last one wins.
	Interval time.Duration
	// Timeout is the deadline of one pass (default DefaultSampleTimeout).
	Timeout time.Duration
	// FlushRetention is how long usage_flushes rows are kept (default
	// DefaultFlushRetention); a replica only ever retries its latest flush.
	FlushRetention time.Duration
	Log            *slog.Logger
	// Now is the clock that names the hour sampled (default time.Now).
	Now func() time.Time
}

// Sampler samples each serving tenant's database size and site storage
// into its current hour, and prunes old flush keys.
type Sampler struct{ o SamplerOptions }

// NewSampler checks o and fills its defaults.
func NewSampler(o SamplerOptions) (*Sampler, error) {
	if o.DB == nil || o.DatabaseSizes == nil {
		return nil, errors.New("usage: SamplerOptions.DB and DatabaseSizes are required")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultSampleInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultSampleTimeout
	}
	if o.FlushRetention <= 0 {
		o.FlushRetention = DefaultFlushRetention
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Sampler{o: o}, nil
}

// Run samples at once and then every Interval until ctx ends; a failed
// pass is logged.
func (s *Sampler) Run(ctx context.Context) error {
	tick := time.NewTicker(s.o.Interval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
		if err := s.RunOnce(pctx); err != nil && ctx.Err() == nil {
			s.o.Log.Warn("usage sampling failed", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// The site bytes are those of the tenant's stored blobs, whichever
// versions name them. A tenant with no database size sampled (its server
// did not answer) keeps the hour's earlier sample.
const sampleSQL = `
INSERT INTO usage_hourly AS u (tenant_id, hour, db_bytes, site_bytes)
SELECT t.id, $1, sz.bytes,
       coalesce((SELECT sum(b.size) FROM site_blobs b WHERE b.tenant_id = t.id AND b.stored), 0)
  FROM tenants t
  LEFT JOIN unnest($2::bigint[], $3::bigint[]) AS sz (id, bytes) ON sz.id = t.id
 WHERE t.status IN ('active', 'suspended')
 ORDER BY t.id
ON CONFLICT (tenant_id, hour) DO UPDATE
   SET db_bytes = coalesce(excluded.db_bytes, u.db_bytes), site_bytes = excluded.site_bytes, updated_at = now()`

const pruneFlushesSQL = `DELETE FROM usage_flushes WHERE flushed_at < now() - make_interval(secs => $1)`

// RunOnce takes one sample of every serving tenant and prunes the flush
// keys past their retention. The sizes are read before the registry is
// written: no transaction waits on a database server.
func (s *Sampler) RunOnce(ctx context.Context) error {
	sizes, sizeErr := s.o.DatabaseSizes(ctx)
	ids := make([]int64, 0, len(sizes))
	bytes := make([]int64, 0, len(sizes))
	for id, b := range sizes {
		ids, bytes = append(ids, id), append(bytes, b)
	}
	hour := s.o.Now().UTC().Truncate(time.Hour)
	if _, err := s.o.DB.Exec(ctx, sampleSQL, hour, ids, bytes); err != nil {
		return fmt.Errorf("usage: sample: %w", err)
	}
	if _, err := s.o.DB.Exec(ctx, pruneFlushesSQL, s.o.FlushRetention.Seconds()); err != nil {
		return fmt.Errorf("usage: prune flushes: %w", err)
	}
	if sizeErr != nil {
		return fmt.Errorf("usage: database sizes: %w", sizeErr)
	}
	return nil
}
