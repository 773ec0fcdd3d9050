package admin_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// artifactDir is where the journey's screenshots go: SWA_ARTIFACTS_DIR
// when set (CI uploads it), else testdata/artifacts, which git ignores.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWA_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	dir = filepath.Join(dir, "admin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// TestBrowserSignInWithTOTP drives the pages in headless Chromium: sign in,
// turn TOTP on with the QR page's secret, sign out, sign in again with a
// code, and visit every page, on a desktop and a phone-sized viewport,
// saving a screenshot of each.
func TestBrowserSignInWithTOTP(t *testing.T) {
	t.Parallel()
	chromium := pgtest.Require(t, "SWA_CHROMIUM")
	f := newFixture(t, fixtureOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.app.Listener(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { _ = f.app.Shutdown() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://" + hostA + ":" + port

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("host-resolver-rules", "MAP *.admin.test 127.0.0.1"),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	dir := artifactDir(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			path := filepath.Join(dir, name+".png")
			t.Log("screenshot:", path)
			return os.WriteFile(path, png, 0o644)
		})
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
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
