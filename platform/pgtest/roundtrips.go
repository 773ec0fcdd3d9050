package pgtest

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// RoundTrips is a pgx tracer that counts the round trips connections make
// to the database: each query, exec or begin sent on its own counts one,
// and a batch (pgx.Batch, its statements pipelined and answered together)
// counts one however many statements it holds. Set it as a pool's (or
// pools.Options') Tracer, reset it before the request to measure and read
// it after. Statement preparation on a connection's first use of a query
// is not counted: the figure is that of a warm connection.
type RoundTrips struct{ n atomic.Int64 }

// Reset sets the count to zero.
func (r *RoundTrips) Reset() { r.n.Store(0) }

// Count returns the round trips since the last Reset.
func (r *RoundTrips) Count() int64 { return r.n.Load() }

// TraceQueryStart implements pgx.QueryTracer.
func (r *RoundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (r *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart implements pgx.BatchTracer.
func (r *RoundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer.
func (r *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (r *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
