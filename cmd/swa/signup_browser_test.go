package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// TestBrowserSignUpJourney is a founder's sign-up in headless Chromium on
// swa dev: the form on http://www.localhost, the link from Mailpit, the
// confirmation, the waiting page that moves on by itself, and the new
// shop's back office, signed in; then the shop's storefront; then the
// founder's sign-in on the platform site (refused, then right), /shops with
// the shop, sign-out, sign-in again, and the back office from /shops. It logs the
// time from the confirmation click to the back office's first page, and
// saves a screenshot of every step.
func TestBrowserSignUpJourney(t *testing.T) {
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	h := newDevHarness(t)
	h.start()
	site := strings.Replace(h.urls.Data, "127.0.0.1", "www.localhost", 1)
	port := site[strings.LastIndexByte(site, ':')+1:]
	suffix := strings.ReplaceAll(strings.ToLower(pgtest.RandomName("b")), "_", "")
	email, slug := "founder-"+suffix+"@example.test", "br-"+suffix

	b := browsertest.New(t, "MAP *.localhost 127.0.0.1", 240*time.Second, "signup")
	ctx, shot := b.Ctx, b.Shot
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(b.Ctx, actions...); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, h.logText())
		}
	}

	run("landing and pricing",
		chromedp.Navigate(site+"/"),
		chromedp.WaitVisible(chromedp.CSS(`.hero`)),
		shot("1-landing"),
		chromedp.Navigate(site+"/pricing"),
		chromedp.WaitVisible(chromedp.CSS(`.plans`)),
		shot("2-pricing"),
	)
	run("a reserved subdomain",
		chromedp.Navigate(site+"/signup"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), email),
		chromedp.SendKeys(chromedp.CSS(`#password`), "Founder-Pass-42!"),
		chromedp.SendKeys(chromedp.CSS(`#shop_name`), "Browser Shop"),
		chromedp.SendKeys(chromedp.CSS(`#subdomain`), "admin"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#subdomain-error`)),
		shot("3-signup-error"),
	)
	run("sign up",
		chromedp.Clear(chromedp.CSS(`#subdomain`)),
		chromedp.SendKeys(chromedp.CSS(`#subdomain`), slug),
		chromedp.SendKeys(chromedp.CSS(`#password`), "Founder-Pass-42!"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`main h1`)),
		shot("4-check-your-email"),
	)
	msgs := mp.Wait(t, `to:"`+email+`"`, 1, 30*time.Second)
	link := regexp.MustCompile(`http://www\.localhost:\d+/verify\?token=[A-Za-z0-9_-]+`).FindString(msgs[0].Text)
	if link == "" || !strings.Contains(link, ":"+port+"/") {
		t.Fatalf("verification link %q (data plane port %s) in:\n%s", link, port, msgs[0].Text)
	}
	run("verification landing",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/verify"] button`)),
		shot("5-confirm"),
	)
	clicked := time.Now()
	run("confirm", chromedp.Click(chromedp.CSS(`form[action="/verify"] button`)))
	waiting := false
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatalf("location: %v", err)
		}
		if strings.HasPrefix(loc, "http://"+slug+".localhost:"+port+"/admin/") {
			break
		}
		if !waiting && strings.HasSuffix(loc, "/welcome") {
			if s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main h1`))); err == nil && strings.Contains(s, "being created") {
				waiting = true
				run("waiting page", shot("6-being-created"))
			}
		}
		if time.Since(clicked) > 60*time.Second {
			t.Fatalf("still at %s a minute after the confirmation\n%s", loc, h.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	run("back office", chromedp.WaitVisible(chromedp.CSS(`.grid`)))
	t.Logf("confirmation click to the first page (200) on %s.localhost: %s", slug, time.Since(clicked).Round(time.Millisecond))
	run("back office screenshot", shot("7-back-office"))
	run("storefront",
		chromedp.Navigate("http://"+slug+".localhost:"+port+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body`)),
		shot("8-storefront"),
	)
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || !strings.Contains(title, "Browser Shop") {
		t.Errorf("storefront title %q (%v), want the shop's name", title, err)
	}
	signIn := func(password string) {
		t.Helper()
		run("sign in on the platform site",
			chromedp.Navigate(site+"/signin"),
			chromedp.WaitVisible(chromedp.CSS(`#email`)),
			chromedp.SendKeys(chromedp.CSS(`#email`), email),
			chromedp.SendKeys(chromedp.CSS(`#password`), password),
			chromedp.Click(chromedp.CSS(`form[action="/signin"] button`)),
		)
	}
	signIn("Not-The-Pass-42!")
	run("founder sign-in refused",
		chromedp.WaitVisible(chromedp.CSS(`#signin-error`)),
		shot("10-signin-refused"),
	)
	signIn("Founder-Pass-42!")
	run("founder's shops, then sign-out",
		chromedp.WaitVisible(chromedp.CSS(`#shop-`+slug)),
		shot("11-shops"),
		chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`main a[href="/signin"]`)),
		shot("12-signed-out"),
	)
	signIn("Founder-Pass-42!")
	run("signed in again", chromedp.WaitVisible(chromedp.CSS(`#shop-`+slug)))
	listed, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#shop-`+slug)))
	if err != nil || !strings.Contains(listed, "Browser Shop") || !strings.Contains(listed, slug+".localhost") || !strings.Contains(listed, "Free") {
		t.Errorf("/shops lists %q (%v), want the shop's name, address and plan", listed, err)
	}
	run("back office from /shops",
		chromedp.Click(chromedp.CSS(`form[action="/shops/`+slug+`/back-office"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.grid`)),
	)
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasPrefix(loc, "http://"+slug+".localhost:"+port+"/admin/") {
		t.Errorf("after the back-office button: %s (%v)", loc, err)
	}
	run("phone-sized shops page",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(site+"/shops"),
		chromedp.WaitVisible(chromedp.CSS(`#shop-`+slug)),
		shot("13-shops-phone"),
	)
	run("phone-sized sign-up form",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(site+"/signup"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		shot("9-signup-phone"),
	)
}
