package admin

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

var fiberParamRE = regexp.MustCompile(`:([a-zA-Z_]+)`)

// TestOpenAPIMatchesRoutes keeps openapi.json and the mounted API in step:
// every route documented, nothing documented that is not mounted, and each
// operation's x-access saying who may call it as the route enforces.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Access string `json:"x-access"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q, want 3.1.x", doc.OpenAPI)
	}
	documented := map[string]string{}
	for path, item := range doc.Paths {
		for m, o := range item {
			documented[strings.ToUpper(m)+" "+path] = o.Access
		}
	}
	app := fiber.New()
	a := &App{}
	api := app.Group(APIPrefix)
	for _, rt := range a.routes() {
		api.Add(rt.method, rt.path, func(*fiber.Ctx) error { return nil })
	}
	var mounted []string
	for _, r := range app.GetRoutes(true) {
		if r.Method == fiber.MethodHead {
			continue
		}
		mounted = append(mounted, r.Method+" "+fiberParamRE.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(mounted)
	if len(mounted) < 20 {
		t.Fatalf("only %d routes: %v", len(mounted), mounted)
	}
	accessWord := map[access]string{public: "public", anyStaff: "staff", sessionOnly: "session", ownerOnly: "owner", totpStage: "session waiting"}
	for _, rt := range a.routes() {
		key := rt.method + " " + APIPrefix + fiberParamRE.ReplaceAllString(rt.path, "{$1}")
		got, ok := documented[key]
		if !ok {
			t.Errorf("route %s is mounted but not in openapi.json", key)
			continue
		}
		if !strings.HasPrefix(got, accessWord[rt.access]) {
			t.Errorf("%s: x-access %q, but the route allows %s", key, got, accessWord[rt.access])
		}
	}
	for r := range documented {
		if !slices.Contains(mounted, r) {
			t.Errorf("openapi.json documents %s, which is not mounted", r)
		}
	}
}
