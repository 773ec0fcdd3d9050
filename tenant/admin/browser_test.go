package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
)

// TestBrowserSignInWithTOTP drives the pages in headless Chromium: sign in,
// turn TOTP on with the QR page's secret, sign out, sign in again with a
// code, and visit every page, on a desktop and a phone-sized viewport,
// saving a screenshot of each.
func TestBrowserSignInWithTOTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	base := f.listen(t)

	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 90*time.Second, "admin")
	ctx, shot, run, text := b.Ctx, b.Shot, b.Run, b.Text

	email := f.owner[f.a.ID]

	run("sign in",
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		shot("01-sign-in"),
		chromedp.SendKeys(chromedp.CSS(`#email`), email),
		chromedp.SendKeys(chromedp.CSS(`#password`), "wrong"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.error`)),
		shot("02-sign-in-refused"),
		chromedp.SendKeys(chromedp.CSS(`#password`), ownerPassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.grid`)),
		shot("03-dashboard"),
	)
	run("enrol TOTP",
		chromedp.Click(chromedp.CSS(`a[href="/admin/security"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/admin/security/totp"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/admin/security/totp"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`img.qr`)),
		shot("04-totp-enrol"),
	)
	secret := strings.TrimSpace(text(`code.secret`))
	if len(secret) < 16 {
		t.Fatalf("secret on the page = %q", secret)
	}
	run("confirm TOTP",
		chromedp.SendKeys(chromedp.CSS(`#code`), f.code(t, secret, 0)),
		chromedp.Click(chromedp.CSS(`form[action="/admin/security/totp/confirm"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.codes`)),
		shot("05-recovery-codes"),
		chromedp.Click(chromedp.CSS(`button.link`)),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
	)
	run("sign in with TOTP",
		chromedp.SendKeys(chromedp.CSS(`#email`), email),
		chromedp.SendKeys(chromedp.CSS(`#password`), ownerPassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#code`)),
		shot("06-totp-step"),
		// The code that confirmed the enrolment is spent: the next step's.
		chromedp.SendKeys(chromedp.CSS(`#code`), f.code(t, secret, 1)),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.grid`)),
	)
	if who := text(`.who`); !strings.Contains(who, email) {
		t.Fatalf("signed in as %q", who)
	}
	run("staff and audit",
		chromedp.Navigate(base+"/admin/staff"),
		chromedp.WaitVisible(chromedp.CSS(`#invite-email`)),
		chromedp.SendKeys(chromedp.CSS(`#invite-email`), "new.hire@example.com"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/staff/invite"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)),
		shot("07-staff"),
		chromedp.Navigate(base+"/admin/audit"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
		shot("08-audit"),
	)
	if audit := text(`tbody`); !strings.Contains(audit, "totp.enabled") || !strings.Contains(audit, "invitation.created") {
		t.Fatalf("audit page lacks the journey's changes: %q", audit)
	}
	run("API token",
		chromedp.Navigate(base+"/admin/security"),
		chromedp.WaitVisible(chromedp.CSS(`#token-name`)),
		chromedp.SendKeys(chromedp.CSS(`#token-name`), "stock sync"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/security/tokens"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)),
		shot("08b-security-token"),
	)
	run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/staff"),
		chromedp.WaitVisible(chromedp.CSS(`#invite-email`)),
		shot("09-staff-phone"),
		chromedp.Navigate(base+"/admin/security"),
		chromedp.WaitVisible(chromedp.CSS(`#current_password`)),
		shot("10-security-phone"),
		chromedp.Navigate(base+"/admin/audit"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
		shot("10b-audit-phone"),
	)
	anon, cancelAnon := chromedp.NewContext(ctx)
	defer cancelAnon()
	if err := chromedp.Do(anon,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/forgot-password"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		shot("11-forgot-phone"),
		chromedp.Navigate(base+"/admin/accept-invitation?token=x"),
		chromedp.WaitVisible(chromedp.CSS(`#name`)),
		shot("12-accept-phone"),
	); err != nil {
		t.Fatalf("anonymous pages: %v", err)
	}
}
