package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// TestBrowserAdsChatAddressesReset: the pages no other browser test
// opens, in headless Chromium. Staff create an ad from its form (a bad
// landing URL refused with the field marked, the typed values kept), see
// its tracking link and set it running; the chat messages (newest first,
// a message's markup shown as text) and default shipping addresses list
// what the shop holds; a member of staff who forgot the password gets the
// link by mail, chooses a new one on the reset page (a mismatch refused)
// and signs in with it. Screenshots of each page, the ads page on a phone
// too.
func TestBrowserAdsChatAddressesReset(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	base := f.listen(t)
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	email := f.addStaff(owner, "staff")
	f.exec(f.a, `INSERT INTO chat_message (name, email_address, message, created_date_time) VALUES
		('Ada', 'ada@example.com', 'Do you ship to Lyon?', now() - interval '1 hour'),
		('Bob', 'bob@example.com', '<script>alert(1)</script> and a refund?', now())`)
	f.exec(f.a, `INSERT INTO default_shipping_address (name, address_line1, city, state, zip, country, country_code)
		VALUES ('Ada Lovelace', '1 Rue de la Paix', 'Lyon', 'ARA', '69001', 'France', 'FR')`)

	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 120*time.Second, "admin")
	b.Run("sign in", signInActions(base, f.owner[f.a.ID])...)
	b.Run("an ad refused",
		chromedp.Navigate(base+"/admin/ads"),
		chromedp.WaitVisible(chromedp.CSS(`#headline_1`)),
		chromedp.SetValue(chromedp.CSS(`#ad_type`), "Facebook"),
		chromedp.SendKeys(chromedp.CSS(`#campaignid`), "spring-1"),
		chromedp.SendKeys(chromedp.CSS(`#headline_1`), "Spring sale"),
		// type=url would stop the browser from sending a bad scheme; the
		// server's own check is what is tested.
		chromedp.SetAttributeValue(chromedp.CSS(`#final_url`), "type", "text"),
		chromedp.SendKeys(chromedp.CSS(`#final_url`), "javascript:alert(1)"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/ads"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#final_url[aria-invalid="true"]`)),
	)
	if kept, err := chromedp.Run(b.Ctx, chromedp.Value(chromedp.CSS(`#headline_1`))); err != nil || kept != "Spring sale" {
		t.Errorf("headline after the refusal = %q, %v", kept, err)
	}
	b.Run("an ad created",
		chromedp.SetValue(chromedp.CSS(`#final_url`), "https://shop.example.com/spring"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/ads"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-ads`)),
	)
	var code string
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT ad_cd FROM ad WHERE campaignid = 'spring-1'`).Scan(&code); err != nil {
		t.Fatalf("the ad: %v", err)
	}
	if n := b.Text(`.notice`); !strings.Contains(n, "Ad created with code "+code) {
		t.Errorf("after creating: %q", n)
	}
	if link := b.Text(`td[data-label="Tracking link"]`); link != "https://shop.example.com/spring?ad_cd="+code {
		t.Errorf("tracking link = %q", link)
	}
	b.Run("set running",
		chromedp.SetValue(chromedp.CSS(`select[name="ad_status"]`), "Running"),
		chromedp.Click(chromedp.CSS(`form[action$="/status"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-status`)),
		b.Shot("80-ads"),
	)
	if n := b.Text(`.notice`); n != "Ad "+code+" is now Running." {
		t.Errorf("after the status: %q", n)
	}
	var status string
	if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT s.title FROM ad JOIN ad_status s ON s.id = ad.ad_status_id WHERE ad_cd = $1`, code).
		Scan(&status); err != nil || status != "Running" {
		t.Errorf("stored status %q, %v", status, err)
	}

	b.Run("chat", chromedp.Navigate(base+"/admin/chat-messages"), chromedp.WaitVisible(chromedp.CSS(`table`)), b.Shot("81-chat"))
	chat := b.Text(`tbody`)
	if i, j := strings.Index(chat, "refund"), strings.Index(chat, "Lyon"); i < 0 || j < 0 || i > j ||
		!strings.Contains(chat, "<script>alert(1)</script>") {
		t.Errorf("chat, newest first, markup as text:\n%s", chat)
	}
	b.Run("addresses", chromedp.Navigate(base+"/admin/shipping-addresses"), chromedp.WaitVisible(chromedp.CSS(`table`)), b.Shot("82-addresses"))
	if a := b.Text(`tbody`); !strings.Contains(a, "Ada Lovelace") || !strings.Contains(a, "1 Rue de la Paix") || !strings.Contains(a, "69001") {
		t.Errorf("addresses:\n%s", a)
	}
	b.Run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/ads"),
		chromedp.WaitVisible(chromedp.CSS(`#headline_1`)),
		b.Shot("83-ads-phone"),
	)

	// A browser context of its own, signed out: the forgotten password.
	// (Its forms are submitted, not clicked: a click in a tab that is not
	// in front can miss.)
	anon, cancel := chromedp.NewContext(b.Ctx, chromedp.WithNewBrowserContext())
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(anon, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	run("forgot",
		chromedp.Navigate(base+"/admin/forgot-password"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), email),
		chromedp.Submit(chromedp.CSS(`#email`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)),
	)
	token := linkToken(t, f.deliver(email, 2)[0])
	const newPassword = "Fresh-Start!42x"
	run("reset refused",
		chromedp.Navigate(base+"/admin/reset-password?token="+token),
		chromedp.WaitVisible(chromedp.CSS(`#password`)),
		b.Shot("84-reset"),
		chromedp.SendKeys(chromedp.CSS(`#password`), newPassword),
		chromedp.SendKeys(chromedp.CSS(`#confirm_password`), "Other-Start!42x"),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(`#form-error`)),
		b.Shot("85-reset-refused"),
	)
	run("reset",
		// The refused page shows the password fields empty.
		chromedp.SendKeys(chromedp.CSS(`#password`), newPassword),
		chromedp.SendKeys(chromedp.CSS(`#confirm_password`), newPassword),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)),
	)
	if done, err := chromedp.Run(anon, chromedp.Text(chromedp.CSS(`.notice`))); err != nil || !strings.Contains(done, "Your password is changed") {
		t.Fatalf("after the reset: %q, %v", done, err)
	}
	f.signIn(hostA, email, newPassword) // fails the test unless it signs in
}
