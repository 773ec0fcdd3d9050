package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pgtest/browsertest"
	"github.com/startupwebapp/platform/tenant/campaigns"
)

// TestBrowserCampaign drives the campaign pages in headless Chromium:
// write a campaign to prospects (an unknown placeholder refused first),
// see its preview, mail the DRAFT copy (it reaches Mailpit with the
// recipient list), send it behind its confirmation box, and see the send
// log count every recipient once the campaign worker has run; screenshots
// of each page.
func TestBrowserCampaign(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	tag := pgtest.RandomName("bc")
	for i := range 4 {
		f.exec(f.a, `INSERT INTO prospect (email, first_name, pr_cd, email_unsubscribe_string, email_unsubscribe_string_signed)
VALUES ($1, $2, $3, $4, $5)`, fmt.Sprintf("%s-%d@example.com", tag, i), fmt.Sprintf("Pia%d", i), fmt.Sprintf("%sPR%d", tag, i), tag+fmt.Sprint(i), "tok"+tag+fmt.Sprint(i))
	}
	base := f.listen(t)
	b := browsertest.New(t, "MAP *.admin.test 127.0.0.1", 120*time.Second, "admin")
	shot, run, text := b.Shot, b.Run, b.Text
	subject := "Winter letter " + tag
	run("sign in", signInActions(base, f.owner[f.a.ID])...)
	run("write, refused",
		chromedp.Navigate(base+"/admin/campaigns"),
		chromedp.WaitVisible(chromedp.CSS(`#subject`)),
		chromedp.SendKeys(chromedp.CSS(`#subject`), subject),
		chromedp.SetValue(chromedp.CSS(`#type`), "prospect"),
		chromedp.SendKeys(chromedp.CSS(`#body_text`), "Hello {recipient_frist_name}"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/campaigns"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.error`)),
		shot("60-campaign-refused"),
	)
	if e := text(`.error`); !strings.Contains(e, "{recipient_frist_name}") {
		t.Fatalf("refusal = %q, want the placeholder named", e)
	}
	run("write",
		chromedp.Clear(chromedp.CSS(`#body_text`)),
		chromedp.SendKeys(chromedp.CSS(`#body_text`), "Hello {recipient_first_name}, our winter things are in."),
		chromedp.SendKeys(chromedp.CSS(`#body_html`), "<p>Hello {recipient_first_name}</p>"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/campaigns"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#preview-text`)),
		shot("61-campaign-preview"),
	)
	if p := text(`#preview-text`); !strings.Contains(p, "Hello Pia") || !strings.Contains(p, "unsubscribe") {
		t.Errorf("preview = %q", p)
	}
	page, err := chromedp.Run(b.Ctx, chromedp.Location())
	if err != nil || !strings.Contains(page, "/admin/campaigns/") {
		t.Fatalf("after creating: at %q %v", page, err)
	}
	run("draft",
		chromedp.Click(chromedp.CSS(`form[action$="/draft"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-draft`)),
	)
	drafts := f.deliver(f.owner[f.a.ID], 1)
	if d := drafts[len(drafts)-1]; d.Subject != "DRAFT: "+subject || !strings.Contains(d.Text, tag+"-3@example.com") {
		t.Errorf("draft mail %q: %q", d.Subject, d.Text)
	}
	run("send",
		chromedp.Click(chromedp.CSS(`#confirm-send`)),
		chromedp.Click(chromedp.CSS(`form[action$="/send"] button`)),
		chromedp.WaitReady(chromedp.CSS(`#done-send`)),
	)
	w, err := campaigns.NewWorker(campaigns.Options{Rate: 100,
		Tenants: func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.a} }, Conn: f.dbs.Do})
	if err != nil {
		t.Fatal(err)
	}
	w.RunOnce(context.Background())
	run("send log",
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#send-log`)),
		shot("62-campaign-sent"),
	)
	if s := text(`#campaign-sent`); s != "4" {
		t.Errorf("send log: sent %q, want 4", s)
	}
	if st := text(`#campaign-status`); !strings.Contains(st, "done") {
		t.Errorf("status %q, want done", st)
	}
	for i := range 4 {
		f.deliver(fmt.Sprintf("%s-%d@example.com", tag, i), 1)
	}
	run("send log after delivery",
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#send-log`)),
	)
	if d, fl := text(`#campaign-delivered`), text(`#campaign-failed`); !strings.HasPrefix(d, "4 ") || !strings.HasPrefix(fl, "0 ") {
		t.Errorf("send log: delivered %q, failed %q", d, fl)
	}
	run("list",
		chromedp.Navigate(base+"/admin/campaigns"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
		shot("63-campaigns"),
	)
}
