package main

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkOnboarding measures what a platform admin waits for: from
// POST /v1/tenants to the new tenant answering on its own hostname through
// the data plane (which learns of it by NOTIFY). Reports the median and p90.
//
//	go test -run '^$' -bench Onboarding -benchtime 20x ./cmd/swa
func BenchmarkOnboarding(b *testing.B) {
	h := newDevHarness(b)
	h.start()
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		slug := fmt.Sprintf("bench%d-%d", time.Now().UnixNano()%1e6, i)
		start := time.Now()
		code, body := h.api(http.MethodPost, "/v1/tenants", map[string]any{"slug": slug, "display_name": slug})
		if code != http.StatusAccepted {
			b.Fatalf("POST /v1/tenants = %d %s", code, body)
		}
		for {
			code, _ := h.get(slug+".localhost", "/clientevent/")
			if code == http.StatusOK {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("tenant %s did not answer within 30s (last status %d)", slug, code)
			}
			time.Sleep(2 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Milliseconds()), "p90-ms")
}
