package admin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// The campaign API: placeholders checked before save, preview, the draft
// mailed to the signed-in staff member with its recipient list, send and
// stop, each tenant seeing only its own campaigns.
func TestCampaignAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	tag := pgtest.RandomName("cp")
	for i := range 3 {
		f.exec(f.a, `INSERT INTO prospect (email, first_name, pr_cd, email_unsubscribe_string, email_unsubscribe_string_signed)
VALUES ($1, $2, $3, $4, $5)`, fmt.Sprintf("%s-%d@example.com", tag, i), fmt.Sprintf("Pat%d", i), fmt.Sprintf("PR%d", i), tag+fmt.Sprint(i), "tok"+tag+fmt.Sprint(i))
	}
	f.exec(f.a, `INSERT INTO prospect (email, first_name, email_unsubscribed) VALUES ($1, 'Gone', true)`, tag+"-gone@example.com")

	subject := "Spring news " + tag
	in := map[string]string{"subject": subject, "type": "prospect",
		"body_text": "Hi {recipient_first_name}, {ENVIRONMENT_DOMAIN}/about?em_cd={em_cd}&pr_cd={pr_cd}",
		"body_html": "<p>Hi {recipient_first_name}</p>"}
	bad := map[string]string{"subject": subject, "type": "prospect", "body_text": "Hi {recipient_frist_name}"}
	out := owner.refused(400, "invalid", "body_text", "POST", api+"/campaigns", bad)
	if !strings.Contains(out["detail"].(string), "{recipient_frist_name}") {
		t.Fatalf("detail does not name the placeholder: %s", owner.raw)
	}
	bad["body_text"] = "Hi {mb_cd}" // a member placeholder in a prospect campaign
	owner.refused(400, "invalid", "body_text", "POST", api+"/campaigns", bad)
	owner.refused(400, "invalid", "type", "POST", api+"/campaigns", map[string]string{"subject": "x", "type": "everyone", "body_text": "x"})
	if n := f.count(f.a, `SELECT count(*) FROM email WHERE subject = $1`, subject); n != 0 {
		t.Fatalf("%d refused campaigns saved", n)
	}

	created := owner.must(201, "POST", api+"/campaigns", in)
	id := fmt.Sprint(created["id"])
	if created["status"] != "draft" || created["send_state"] != "idle" || !strings.Contains(created["from"].(string), "@") {
		t.Fatalf("created = %s", owner.raw)
	}
	in["subject"] = subject + " (edited)"
	owner.must(200, "PUT", api+"/campaigns/"+id, in)
	if list := owner.must(200, "GET", api+"/campaigns", nil)["campaigns"].([]any); len(list) != 3 { // with the two seeded examples
		t.Fatalf("list = %s", owner.raw)
	}
	owner.must(404, "GET", api+"/campaigns/1", nil) // an order confirmation, not a campaign
	f.signIn(hostB, f.owner[f.b.ID], ownerPassword).must(404, "GET", api+"/campaigns/"+id, nil)

	var pid int64
	if err := f.dbs[f.a.ID].QueryRow(t.Context(), `SELECT id FROM prospect WHERE pr_cd = 'PR1'`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	pv := owner.must(200, "GET", fmt.Sprintf("%s/campaigns/%s/preview?prospect_id=%d", api, id, pid), nil)
	if !strings.Contains(pv["body_text"].(string), "Hi Pat1,") || !strings.Contains(pv["body_text"].(string), "pr_cd=PR1") ||
		!strings.Contains(pv["body_text"].(string), "pr_token=tok"+tag+"1") || pv["headers"].(map[string]any)["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
		t.Fatalf("preview = %s", owner.raw)
	}
	owner.refused(400, "invalid", "prospect_id", "GET", api+"/campaigns/"+id+"/preview?prospect_id=999999", nil)

	draft := owner.must(202, "POST", api+"/campaigns/"+id+"/draft", nil)
	if draft["recipients"] != float64(3) {
		t.Fatalf("draft = %s", owner.raw)
	}
	var got bool
	for _, m := range f.deliver(f.owner[f.a.ID], 1) {
		if m.Subject == "DRAFT: "+in["subject"] {
			got = true
			for i := range 3 {
				if !strings.Contains(m.Text, fmt.Sprintf("%s-%d@example.com", tag, i)) {
					t.Errorf("draft lacks recipient %d: %q", i, m.Text)
				}
			}
			if strings.Contains(m.Text, tag+"-gone@") {
				t.Errorf("draft lists an unsubscribed prospect")
			}
		}
	}
	if !got {
		t.Fatal("no draft in Mailpit")
	}

	sent := owner.must(202, "POST", api+"/campaigns/"+id+"/send", nil)
	if sent["send_state"] != "sending" || sent["status"] != "ready" || sent["recipients"] != float64(3) {
		t.Fatalf("send = %s", owner.raw)
	}
	owner.refused(409, "conflict", "", "PUT", api+"/campaigns/"+id, in)
	if st := owner.must(202, "POST", api+"/campaigns/"+id+"/stop", nil); st["send_state"] != "stopped" {
		t.Fatalf("stop = %s", owner.raw)
	}
	owner.refused(409, "conflict", "", "POST", api+"/campaigns/"+id+"/stop", nil)
	acts := strings.Join(f.auditActions(f.a), " ")
	for _, a := range []string{"campaign.create", "campaign.update", "campaign.draft", "campaign.send", "campaign.stop"} {
		if !strings.Contains(acts, a) {
			t.Errorf("audit lacks %s: %s", a, acts)
		}
	}
}

// Malformed campaign requests are 4xx in the error shape, never 500, and
// save nothing.
func TestCampaignAPIRefusesBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	before := f.count(f.a, `SELECT count(*) FROM email`)
	long := strings.Repeat("x", 301)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/campaigns", ""},
		{"POST", "/campaigns", "null"},
		{"POST", "/campaigns", "[]"},
		{"POST", "/campaigns", "\x00\xff{"},
		{"POST", "/campaigns", `{"type":5}`},
		{"POST", "/campaigns", `{"subject":"` + long + `","type":"member","body_text":"x"}`},
		{"POST", "/campaigns", `{"subject":"s\r\nBcc: x@example.com","type":"member","body_text":"x"}`},
		{"POST", "/campaigns", `{"subject":"s","type":"member","body_text":"x","from":"not an address"}`},
		{"POST", "/campaigns", `{"subject":"s","type":"member","body_text":"{"}`},
		{"POST", "/campaigns", `{"subject":"s","type":"member","body_text":"x","body_html":"<style>p {color:red}</style>"}`},
		{"PUT", "/campaigns/1", `{"subject":"s","type":"member","body_text":"x"}`},
		{"PUT", "/campaigns/999999", `{"subject":"s","type":"member","body_text":"x"}`},
		{"PUT", "/campaigns/abc", `{}`},
		{"POST", "/campaigns/999999/send", ""},
		{"POST", "/campaigns/3/stop", ""},
		{"GET", "/campaigns/3/preview?prospect_id=-1", ""},
		{"GET", "/campaigns/3/preview?prospect_id=x", ""},
	} {
		status, out := owner.doRaw(tc.method, api+tc.path, "application/json", tc.body)
		if status < 400 || status >= 500 {
			t.Errorf("%s %s %q = %d %s, want a 4xx", tc.method, tc.path, tc.body, status, owner.raw)
			continue
		}
		if _, ok := out["detail"].(string); !ok || out["error"] == nil {
			t.Errorf("%s %s %q = %d without the error shape: %s", tc.method, tc.path, tc.body, status, owner.raw)
		}
	}
	if after := f.count(f.a, `SELECT count(*) FROM email`); after != before {
		t.Fatalf("refused requests saved %d campaigns", after-before)
	}
}

// TestCampaignScheduleAndFiltersAPI: the API keeps a campaign's segment
// filters, schedules a send for later (and refuses one more than a year
// ahead, or a verified-only prospect campaign, naming the field).
func TestCampaignScheduleAndFiltersAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	since := time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339)
	in := map[string]any{"subject": "Members news", "type": "member", "body_text": "Hi {recipient_first_name}",
		"verified_only": true, "joined_after": since}
	created := owner.must(201, "POST", api+"/campaigns", in)
	if created["verified_only"] != true || created["joined_after"] == nil {
		t.Fatalf("created = %s", owner.raw)
	}
	id := fmt.Sprint(created["id"])
	owner.refused(400, "invalid", "verified_only", "POST", api+"/campaigns", map[string]any{"subject": "P", "type": "prospect",
		"body_text": "Hi", "verified_only": true})
	owner.refused(400, "invalid", "at", "POST", api+"/campaigns/"+id+"/send", map[string]any{"at": time.Now().AddDate(2, 0, 0).Format(time.RFC3339)})
	at := time.Now().UTC().Add(3 * time.Hour).Truncate(time.Second)
	sent := owner.must(202, "POST", api+"/campaigns/"+id+"/send", map[string]any{"at": at.Format(time.RFC3339)})
	if got, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(sent["send_after"])); !got.Equal(at) || sent["send_state"] != "sending" {
		t.Fatalf("scheduled = %s", owner.raw)
	}
	if _, html := owner.get("/admin/campaigns/" + id); !strings.Contains(html, `id="campaign-scheduled">`+at.Format("2006-01-02 15:04")+" UTC") {
		t.Errorf("the campaign page does not show the schedule:\n%s", html)
	}
}
