package admin_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAds: ads are created with a drawn 20-character code, their status and
// fields change, bad input names its field, the page lists them with their
// tracking links, and a link event with the code is counted on the insight
// dashboard.
func TestAds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	staff := f.signIn(hostA, f.addStaff(f.signIn(hostA, f.owner[f.a.ID], ownerPassword), "staff"), staffPassword)
	ad := staff.must(201, "POST", api+"/ads", map[string]any{"ad_type": "facebook", "campaignid": "c-1", "final_url": "https://shop.test/sale",
		"headline_1": "Paper clips <b>sale</b>", "description_1": "Half off"})
	code, _ := ad["ad_cd"].(string)
	if !regexp.MustCompile(`^[A-Za-z0-9]{20}$`).MatchString(code) || ad["ad_type"] != "Facebook" || ad["ad_status"] != "Draft" {
		t.Fatalf("created = %s", staff.raw)
	}
	id := strconv.FormatInt(int64(ad["id"].(float64)), 10)
	for _, tc := range []struct {
		method, path string
		body         map[string]any
		code, field  string
	}{
		{"POST", "/ads", map[string]any{"headline_1": "x"}, "required", "ad_type"},
		{"POST", "/ads", map[string]any{"ad_type": "Billboard"}, "invalid", "ad_type"},
		{"POST", "/ads", map[string]any{"ad_type": "Facebook", "headline_1": strings.Repeat("h", 31)}, "invalid", "headline_1"},
		{"POST", "/ads", map[string]any{"ad_type": "Facebook", "final_url": "javascript:alert(1)"}, "invalid", "final_url"},
		{"PATCH", "/ads/" + id, map[string]any{"ad_status": "Paused"}, "invalid", "ad_status"},
	} {
		staff.refused(400, tc.code, tc.field, tc.method, api+tc.path, tc.body)
	}
	staff.refused(404, "not-found", "", "PATCH", api+"/ads/999999", map[string]any{"ad_status": "Running"})
	got := staff.must(200, "PATCH", api+"/ads/"+id, map[string]any{"ad_status": "running", "headline_2": "Today only"})
	if got["ad_status"] != "Running" || got["headline_2"] != "Today only" || got["ad_cd"] != code || got["headline_1"] != "Paper clips <b>sale</b>" {
		t.Errorf("updated = %s", staff.raw)
	}
	if items := staff.must(200, "GET", api+"/ads", nil)["items"].([]any); len(items) != 1 {
		t.Errorf("list = %s", staff.raw)
	}
	status, html := staff.get("/admin/ads")
	if status != 200 || !strings.Contains(html, "https://shop.test/sale?ad_cd="+code) || !strings.Contains(html, "Paper clips &lt;b&gt;sale&lt;/b&gt;") {
		t.Errorf("ads page = %d\n%s", status, html)
	}
	tok := csrfFieldRE.FindStringSubmatch(html)[1]
	if code, html := staff.form("/admin/ads/"+id+"/status", "csrf_token", tok, "ad_status", "Stopped"); code != 200 || !strings.Contains(html, "is now Stopped") {
		t.Errorf("status form = %d %s", code, html)
	}
	if code, html := staff.form("/admin/ads", "csrf_token", tok, "ad_type", "Google AdWords", "headline_1", "Staplers"); code != 200 || !strings.Contains(html, "Ad created with code") {
		t.Errorf("create form = %d %s", code, html)
	}
	// A visit through the ad's link shows on the insight dashboard.
	f.exec(f.a, `INSERT INTO link_event (ad_id, url) SELECT id, 'https://shop.test/sale?ad_cd=' || ad_cd FROM ad WHERE ad_cd = $1`, code)
	f.exec(f.a, `SELECT insight_rebuild()`)
	links := staff.must(200, "GET", api+"/insight", nil)["link_events"].([]any)
	if len(links) != 1 || links[0].(map[string]any)["code"] != "ad:"+code {
		t.Errorf("insight links = %v", links)
	}
}
