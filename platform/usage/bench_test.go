package usage_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/usage"
)

// noDB is never reached: the benchmark only counts, it never flushes.
type noDB struct{}

func (noDB) QueryRow(context.Context, string, ...any) pgx.Row { panic("benchmark flushed") }

// BenchmarkRecordRequest is the cost of counting a request on the hot path,
// from many goroutines at once over 100 tenants; Nop is the reference (an
// interface call that does nothing), so the ratio of the two is the
// meter's own cost.
func BenchmarkRecordRequest(b *testing.B) {
	m, err := usage.NewMeter(usage.Options{DB: noDB{}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		r    usage.Recorder
	}{{"nop", usage.Nop{}}, {"meter", m}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var i int64
				for pb.Next() {
					bc.r.Request(1 + i%100)
					i++
				}
			})
		})
	}
}
