package admin_test

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// TestBrowserImportAndExport drives the people and CSV pages in headless
// Chromium: import a prospects CSV with one bad row (upload, the dry-run
// table showing the refusal, apply, the result page), see the prospects,
// deactivate a member behind the confirmation box, and download the
// orders export and read the file; at desktop and phone widths, with
// screenshots.
func TestBrowserImportAndExport(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	_, miaUser := f.signUp(hostA, "Mia", "Moreno", "mia.moreno@example.com")
	f.exec(f.a, `INSERT INTO customer_order (identifier, member_id, order_total)
SELECT 'ORD-BROWSER-1', m.id, 19.99 FROM member m JOIN account a ON a.id = m.account_id WHERE a.username = $1`, miaUser)
	f.exec(f.a, `INSERT INTO customer_order (identifier, order_total) VALUES ('=CMD()', 5.00)`)
	base := f.listen(t)

	csvPath := filepath.Join(t.TempDir(), "leads.csv")
	if err := os.WriteFile(csvPath, []byte("email,first_name,last_name\nann@example.com,Ann,Archer\nnot-an-address,Bad,Row\nben@example.com,Ben,Baker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()

	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 90*time.Second, "admin")
	ctx, shot, run := b.Ctx, b.Shot, b.Run
	text := func(sel string) string { return strings.TrimSpace(b.Text(sel)) }

	run("sign in", signInActions(base, f.owner[f.a.ID])...)
	run("upload",
		chromedp.Click(chromedp.CSS(`a[href="/admin/imports"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#import-file`)),
		shot("20-imports"),
		chromedp.SetUploadFiles(chromedp.CSS(`#import-file`), []string{csvPath}),
		chromedp.Click(chromedp.CSS(`form[action="/admin/imports"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#apply`)),
		shot("21-dry-run"),
	)
	if c, r := text(`#count-create`), text(`#count-refused`); c != "2" || r != "1" {
		t.Fatalf("dry run shows %s to create and %s refused", c, r)
	}
	if bad := text(`tr.row-refused`); !strings.Contains(bad, "3") || !strings.Contains(bad, "not a valid address") {
		t.Fatalf("the refused row reads %q", bad)
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect`); n != 0 {
		t.Fatalf("the dry run wrote %d prospects", n)
	}
	run("apply",
		chromedp.Click(chromedp.CSS(`#apply`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-status`)),
	)
	// The status is read as the page may be replaced under the read (the
	// job's own navigation, a reload): a read that finds no page is "not
	// yet", and the next round looks again.
	status := func() string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#job-status`)))
		if err != nil {
			t.Logf("read #job-status: %v (retrying)", err)
		}
		return s
	}
	for deadline := time.Now().Add(20 * time.Second); status() != "done"; {
		if time.Now().After(deadline) {
			t.Fatalf("job status %q", status())
		}
		// A reload can land while the page is replaced by the job's own
		// navigation ("not attached to an active page"): that is no
		// failure, the next round looks again.
		if err := chromedp.Do(ctx, chromedp.Sleep(100*time.Millisecond), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#job-status`))); err != nil {
			t.Logf("reload: %v (retrying)", err)
		}
	}
	run("result", shot("22-applied"))
	if c := text(`#count-create`); c != "2" {
		t.Fatalf("result shows %s created", c)
	}
	run("prospects",
		chromedp.Navigate(base+"/admin/prospects"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
		shot("23-prospects"),
	)
	if body := text(`tbody`); !strings.Contains(body, "ann@example.com") || !strings.Contains(body, "ben@example.com") || strings.Contains(body, "not-an-address") {
		t.Fatalf("prospects page: %q", body)
	}
	run("member",
		chromedp.Navigate(base+"/admin/members?q=moreno"),
		chromedp.WaitVisible(chromedp.CSS(`tbody a`)),
		shot("24-members"),
		chromedp.Click(chromedp.CSS(`tbody a`)),
		chromedp.WaitVisible(chromedp.CSS(`#member-status`)),
		shot("25-member"),
		// The box is required: the click alone does nothing.
		chromedp.Click(chromedp.CSS(`form[action$="/deactivate"] button`)),
		chromedp.Sleep(300*time.Millisecond),
	)
	if s := text(`#member-status`); s != "active" {
		t.Fatalf("deactivated without the confirmation: %q", s)
	}
	run("deactivate",
		chromedp.Click(chromedp.CSS(`#confirm-deactivate`)),
		chromedp.Click(chromedp.CSS(`form[action$="/deactivate"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)),
		shot("26-member-deactivated"),
	)
	if s := text(`#member-status`); s != "deactivated" {
		t.Fatalf("member status %q", s)
	}

	dctx, cancelD := context.WithTimeout(ctx, 20*time.Second)
	defer cancelD()
	progress := chromedp.Events(dctx, browser.DownloadProgress)
	run("export orders",
		chromedp.Navigate(base+"/admin/imports"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/admin/api/v1/exports/orders"]`)),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: ptr(true)})
			return err
		}),
		chromedp.Click(chromedp.CSS(`a[href="/admin/api/v1/exports/orders"]`)),
	)
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(downloads, ev.GUID)
			break
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][1] != "identifier" || recs[1][1] != "ORD-BROWSER-1" || recs[2][1] != "'=CMD()" {
		t.Fatalf("downloaded orders (%v): %q", err, raw)
	}

	run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/imports"),
		chromedp.WaitVisible(chromedp.CSS(`#import-file`)),
		shot("27-imports-phone"),
		chromedp.Navigate(base+"/admin/imports/1"),
		chromedp.WaitVisible(chromedp.CSS(`#job-status`)),
		shot("28-import-result-phone"),
		chromedp.Navigate(base+"/admin/members"),
		chromedp.WaitVisible(chromedp.CSS(`tbody a`)),
		chromedp.Click(chromedp.CSS(`tbody a`)),
		chromedp.WaitVisible(chromedp.CSS(`#member-status`)),
		shot("29-member-phone"),
	)
}

func ptr[T any](v T) *T { return &v }
