package storefront_test

import (
	"net/http"
	"regexp"
	"testing"
)

var subresourceRE = regexp.MustCompile(`(?:<link rel="stylesheet" href|<script src|<img src)="([^"]+)"`)

// benchPage measures the server time of one page (loopback HTTP to the
// in-process data plane, the API endpoints it runs included) and reports
// its weight: the bytes of the page and of what it loads, and the number
// of requests a browser with an empty cache makes.
func benchPage(b *testing.B, path string) {
	e := newEnv(b)
	c := e.client(b, hostA)
	first := c.get(path)
	if first.status != http.StatusOK {
		b.Fatalf("GET %s = %d", path, first.status)
	}
	bytes, requests := len(first.body), 1
	for _, m := range subresourceRE.FindAllStringSubmatch(first.body, -1) {
		p := c.get(m[1])
		if p.status != http.StatusOK {
			b.Fatalf("GET %s = %d", m[1], p.status)
		}
		bytes += len(p.body)
		requests++
	}
	b.ResetTimer()
	for b.Loop() {
		if p := c.get(path); p.status != http.StatusOK {
			b.Fatalf("GET %s = %d", path, p.status)
		}
	}
	b.ReportMetric(float64(bytes), "page-bytes")
	b.ReportMetric(float64(requests), "page-requests")
}

func BenchmarkHomePage(b *testing.B) { benchPage(b, "/") }

func BenchmarkProductPage(b *testing.B) {
	benchPage(b, "/product?name=BinderClips&id=ITHJW3mytn")
}
