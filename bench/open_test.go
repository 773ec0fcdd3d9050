package bench

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// statusBadAnswer is the status recorded for an answer that came with a
// 2xx code but did not say what the scenario expected (a step that did
// not happen); it counts as an error of its own class.
const statusBadAnswer = 1

// fire sends request i of an open-loop run and returns its label and
// status (0: transport error, statusBadAnswer: an unexpected answer).
type fire func(i int) (label, status int)

// runOpen sends requests at a fixed arrival rate (per second) until
// duration has passed: request i is due at start + i/rate whatever became
// of the ones before it, and its latency is measured from that intended
// start, not from when it could be sent. A slow server therefore shows its
// queue in the figures instead of slowing the generator down (no
// coordinated omission). At most inFlight requests run at once; an arrival
// that finds them all busy waits for one, and that wait is part of its
// latency.
func runOpen(rate float64, duration time.Duration, inFlight int, send fire) loadResult {
	interval := time.Duration(float64(time.Second) / rate)
	var (
		mu      sync.Mutex
		res     loadResult
		wg      sync.WaitGroup
		slots   = make(chan struct{}, inFlight)
		started = time.Now()
	)
	for i := 0; ; i++ {
		due := started.Add(time.Duration(i) * interval)
		if due.Sub(started) >= duration {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			label, status := send(i)
			s := sample{label: label, status: status, latency: time.Since(due)}
			mu.Lock()
			res.samples = append(res.samples, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(started)
	return res
}

// percentiles are an open-loop run's latencies, from intended starts.
type percentiles struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func (res loadResult) percentiles(keep func(sample) bool) percentiles {
	lat := make([]time.Duration, 0, len(res.samples))
	for _, s := range res.samples {
		if keep == nil || keep(s) {
			lat = append(lat, s.latency)
		}
	}
	slices.Sort(lat)
	p := percentiles{n: len(lat)}
	if p.n == 0 {
		return p
	}
	at := func(q int) time.Duration { return lat[min(p.n*q/100, p.n-1)] }
	p.p50, p.p90, p.p99, p.max = at(50), at(90), at(99), lat[p.n-1]
	return p
}

func (p percentiles) report(b *testing.B, prefix string) {
	b.ReportMetric(ms(p.p50), prefix+"p50-ms")
	b.ReportMetric(ms(p.p90), prefix+"p90-ms")
	b.ReportMetric(ms(p.p99), prefix+"p99-ms")
	b.ReportMetric(ms(p.max), prefix+"max-ms")
}

// statusClass names a sample's status class: 2xx ... 5xx, "transport" or
// "bad-answer".
func statusClass(status int) string {
	switch status {
	case 0:
		return "transport"
	case statusBadAnswer:
		return "bad-answer"
	}
	return fmt.Sprintf("%dxx", status/100)
}

// classes counts the samples by status class.
func (res loadResult) classes() map[string]int {
	out := map[string]int{}
	for _, s := range res.samples {
		out[statusClass(s.status)]++
	}
	return out
}

// TestStatusClass pins the class names the open-loop reports use.
func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{0: "transport", 1: "bad-answer", 200: "2xx", 302: "3xx", 404: "4xx", 503: "5xx"} {
		if got := statusClass(status); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", status, got, want)
		}
	}
}
