package analytics_test

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/tenant/analytics"
)

// BenchmarkIngest drives the whole server chain (request id, tenant
// resolution, the beacon handler) in memory, without sockets, and reports the
// events written per second: rows in the tables divided by the time from the
// first request to the end of Close.
func BenchmarkIngest(b *testing.B) {
	// The buffer is large enough that nothing is dropped: this measures how
	// fast events reach the tables, not the drop policy.
	f := newFixture(b, analytics.Options{FlushInterval: 20 * time.Millisecond, BatchSize: 2000, BufferSize: 10000000})
	h := f.app.Handler()
	addr := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 4242}
	page := "http%3A%2F%2Flocalhost%3A8080%2Fproduct%2FaBcDeFgHiJ%3Fref%3Dnews"
	targets := []string{
		"/clientevent/pageview?client_event_id=null&anonymous_id=eBgIFC8sL2F6s6NTjw9R:1xWMZS:xR97JRv7uQgOpRfG1489YyIGCj07HgXF0p6Ixhsuttw&pageWidth=1280&url=" + page,
		"/clientevent/buttonclick?client_event_id=" + strconv.FormatInt(f.seed.accountID, 10) + "&anonymous_id=abc&button_id=chat-icon&url=" + page,
		"/clientevent/ajaxerror?client_event_id=undefined&anonymous_id=abc&error_id=cart-totals&url=" + page,
		"/clientevent/linkevent?mb_cd=" + f.seed.mbCd + "&pr_cd=null&em_cd=" + f.seed.emCd + "&ad_cd=null&anonymous_id=abc&url=" + page,
	}
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		var ctx fasthttp.RequestCtx
		i := 0
		for pb.Next() {
			req.Reset()
			req.Header.SetMethod("GET")
			req.SetRequestURI(targets[i%len(targets)])
			req.Header.SetHost(hostOn)
			req.Header.Set("User-Agent", "Mozilla/5.0 (bench)")
			ctx.Init(&req, addr, nil)
			h(&ctx)
			if ctx.Response.StatusCode() != 200 {
				failed.Add(1)
			}
			i++
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := f.an.Close(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
	rows := 0
	for _, table := range []string{"pageview", "ajax_error", "button_click", "link_event"} {
		rows += count(b, f.on, table)
	}
	if rows != b.N {
		b.Errorf("%d rows for %d events (dropped %v)", rows, b.N, counter(b, f.metrics, "swa_clientevent_dropped_total"))
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "events/s")
}
