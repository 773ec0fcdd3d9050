package logtest_test

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/startupwebapp/platform/platform/logtest"
)

// TestBufferFromGoroutines: records written at once by many goroutines
// all come back whole, and Requests picks the access-log ones.
func TestBufferFromGoroutines(t *testing.T) {
	var b logtest.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("request", "i", i)
			log.Warn("other", "i", i)
		}()
	}
	wg.Wait()
	if got := len(b.Records(t)); got != 2*n {
		t.Fatalf("%d records, want %d", got, 2*n)
	}
	seen := map[float64]bool{}
	for _, r := range b.Requests(t) {
		seen[r["i"].(float64)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct request records, want %d", len(seen), n)
	}
}
