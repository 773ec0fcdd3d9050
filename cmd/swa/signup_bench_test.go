package main

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// BenchmarkSignUp measures what a founder waits for: sign-ups end to end
// over HTTP on swa dev (the form, the link from Mailpit, the confirmation),
// timed from the confirmation click to the first 200 from the new shop's
// storefront on its own subdomain. Reports the median and p90.
//
//	go test -run '^$' -bench SignUp -benchtime 20x ./cmd/swa
func BenchmarkSignUp(b *testing.B) {
	mp := mailpit.New(pgtest.Service(b, "SWA_MAILPIT_URL"))
	h := newDevHarness(b)
	h.env["SWA_RATE_LIMITS"] = "off" // every sign-up comes from one address
	h.start()
	br := newBrowser(b, h, false)
	tok := br.csrf()
	tokenRE := regexp.MustCompile(`name="token" value="([^"]+)"`)
	run := strings.ReplaceAll(strings.ToLower(pgtest.RandomName("s")), "_", "")
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		email, slug := fmt.Sprintf("bench-%s-%d@example.test", run, i), fmt.Sprintf("sb-%s-%d", run, i)
		resp, page := br.do("POST", br.url("www", "/signup"), signUpForm(tok, email, "Founder-Pass-42!", "Bench Shop", slug))
		if resp.StatusCode != 303 {
			b.Fatalf("sign-up %d: %d\n%s", i, resp.StatusCode, page)
		}
		link := linkRE.FindString(mp.Wait(b, `to:"`+email+`"`, 1, 30*time.Second)[0].Text)
		_, page = br.do("GET", link, nil)
		m := tokenRE.FindStringSubmatch(page)
		if m == nil {
			b.Fatalf("verification page %d:\n%s", i, page)
		}
		clicked := time.Now()
		if resp, _ := br.do("POST", br.url("www", "/verify"), url.Values{"csrf": {tok}, "token": {m[1]}}); resp.StatusCode != 303 {
			b.Fatalf("verify %d: %d", i, resp.StatusCode)
		}
		for {
			resp, _ := br.do("GET", br.url(slug, "/"), nil)
			if resp.StatusCode == 200 {
				break
			}
			if time.Since(clicked) > 60*time.Second {
				b.Fatalf("%s did not answer 200 within a minute of the click (last %d)\n%s", slug, resp.StatusCode, h.logText())
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(clicked))
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "click-to-200-median-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Milliseconds()), "click-to-200-p90-ms")
}
