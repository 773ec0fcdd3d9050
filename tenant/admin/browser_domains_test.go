package admin_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/controlplane/domaincheck"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// TestBrowserDomainsPage: the owner adds a domain on the domains page in
// headless Chromium; it shows pending with the TXT record to create. After
// the control plane's checker has looked (its resolver down here, an
// inconclusive check), the row shows the check's error and when the claim
// expires: the time the checker stored, which the data plane has no
// setting of its own for. Removal needs its box ticked. Screenshots of the
// page, wide and on a phone.
func TestBrowserDomainsPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	base := f.listen(t)
	const host = "shop.a-widgets.test"

	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 120*time.Second, "admin")
	b.Run("sign in", signInActions(base, f.owner[f.a.ID])...)
	b.Run("add a domain",
		chromedp.Navigate(base+"/admin/domains"),
		chromedp.WaitVisible(chromedp.CSS(`#hostname`)),
		chromedp.SendKeys(chromedp.CSS(`#hostname`), host),
		chromedp.Click(chromedp.CSS(`form[action="/admin/domains"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-domains`)),
	)
	if n := b.Text(`.notice`); !strings.Contains(n, host+" added") {
		t.Fatalf("after adding: %q", n)
	}
	if page := b.Text(`main`); !strings.Contains(page, "_swa-challenge."+host) || !strings.Contains(page, "waiting for its first check") ||
		strings.Contains(page, "expires") {
		t.Fatalf("the new claim before its first check:\n%s", page)
	}

	// The checker's pass, with a resolver that refuses: the claim is
	// kept, and its expiry stored.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resolver := dead.LocalAddr().String()
	dead.Close()
	const expiry = 72 * time.Hour
	checker := domaincheck.New(domaincheck.Options{Registry: registry.New(f.reg, nil), Resolver: resolver,
		Timeout: 2 * time.Second, ClaimExpiry: expiry, Log: slog.New(slog.NewJSONHandler(f.logs, nil))})
	if n, err := checker.CheckDue(ctx); err != nil || n != 1 {
		t.Fatalf("checked %d: %v", n, err)
	}
	var created time.Time
	if err := f.reg.QueryRow(ctx, `SELECT created_at FROM domains WHERE hostname = $1`, host).Scan(&created); err != nil {
		t.Fatal(err)
	}
	wantExpiry := created.Add(expiry).UTC().Format("2006-01-02 15:04 UTC")

	b.Run("the page", chromedp.Navigate(base+"/admin/domains"), chromedp.WaitVisible(chromedp.CSS(`#confirm-remove-`+strings.ReplaceAll(host, ".", `\.`))), b.Shot("70-domains"))
	page := b.Text(`main`)
	for _, want := range []string{hostA + " (default)", "Verified: serves the shop", "no check needed", "Pending: not served yet",
		"The claim expires " + wantExpiry + " unless the record is seen by then", "the DNS resolver did not answer"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	for _, d := range owner.must(200, "GET", api+"/domains", nil)["domains"].([]any) {
		d := d.(map[string]any)
		if got, _ := d["expires_at"].(string); d["hostname"] == host && !strings.HasPrefix(got, created.Add(expiry).UTC().Format("2006-01-02T15:04")) {
			t.Errorf("the API's expires_at = %v, want %v", d["expires_at"], created.Add(expiry))
		}
	}
	b.Run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/domains"),
		chromedp.WaitVisible(chromedp.CSS(`#hostname`)),
		b.Shot("71-domains-phone"),
	)
	b.Run("remove, confirmed",
		chromedp.Click(chromedp.CSS(`#confirm-remove-`+strings.ReplaceAll(host, ".", `\.`))),
		chromedp.Click(chromedp.CSS(`form[action="/admin/domains/remove"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-remove`)),
	)
	if n := b.Text(`.notice`); !strings.Contains(n, host+" removed") {
		t.Errorf("after removing: %q", n)
	}
	var left int
	if err := f.reg.QueryRow(ctx, `SELECT count(*) FROM domains WHERE hostname = $1`, host).Scan(&left); err != nil || left != 0 {
		t.Errorf("claims left: %d, %v", left, err)
	}
}
