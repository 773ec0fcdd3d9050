package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/controlplane/signup"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// The OpenAPI document's enums and patterns are the tenancy package's: a
// status, outcome or rule changed there fails here until openapi.json
// follows.
func TestOpenAPIVocabularyMatchesTenancy(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Enum    []*string `json:"enum"`
				Pattern string    `json:"pattern"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	enum := func(name string) []string {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("controlplane/api/openapi.json has no schema %s", name)
		}
		var out []string
		for _, v := range s.Enum {
			if v == nil {
				out = append(out, "null")
			} else {
				out = append(out, *v)
			}
		}
		return out
	}
	want := func(name string, got, want []string) {
		if !slices.Equal(got, want) {
			t.Errorf("controlplane/api/openapi.json: components.schemas.%s.enum is %q, want %q (from platform/tenancy); edit the document",
				name, got, want)
		}
	}
	want("TenantStatus", enum("TenantStatus"), names(tenancy.Statuses()))
	want("LastMigrationStatus", enum("LastMigrationStatus"), append(names(tenancy.MigrationStatuses()), "null"))
	want("OperationStatus", enum("OperationStatus"), names(tenancy.OperationStatuses()))
	want("MoveStatus", enum("MoveStatus"), registry.MoveStatuses())
	want("SignupStatus", enum("SignupStatus"), signup.Statuses)
	want("DomainStatus", enum("DomainStatus"), names(tenancy.DomainStatuses()))
	for schema, pattern := range map[string]string{"Slug": tenancy.SlugPattern, "Plan": tenancy.PlanPattern} {
		if got := doc.Components.Schemas[schema].Pattern; got != pattern {
			t.Errorf("controlplane/api/openapi.json: components.schemas.%s.pattern is %q, want %q (from platform/tenancy)", schema, got, pattern)
		}
	}
}

// Every status, outcome and plan in the document refers to the one schema
// that holds its values, so no second copy of an enum can drift.
func TestOpenAPIVocabularyIsReferencedNotCopied(t *testing.T) {
	t.Parallel()
	var doc any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{ // property -> the schema it must refer to
		"status":                "TenantStatus",
		"last_migration_status": "LastMigrationStatus",
		"plan":                  "Plan",
	}
	seen := map[string]int{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["in"] == "query" && v["name"] == "status" && strings.HasPrefix(path, "paths./v1/signups.") {
				if ref, _ := v["schema"].(map[string]any)["$ref"].(string); ref != "#/components/schemas/SignupStatus" {
					t.Errorf("controlplane/api/openapi.json: %s: the status parameter is %v, want {\"$ref\": \"#/components/schemas/SignupStatus\"}", path, v["schema"])
				}
				seen["SignupStatus"]++
			} else if v["in"] == "query" && v["name"] == "status" {
				items, _ := v["schema"].(map[string]any)["items"].(map[string]any)
				if items["$ref"] != "#/components/schemas/TenantStatus" {
					t.Errorf("controlplane/api/openapi.json: %s: the status parameter's items are %v, want {\"$ref\": \"#/components/schemas/TenantStatus\"}", path, items)
				}
				seen["TenantStatus"]++
			}
			if props, ok := v["properties"].(map[string]any); ok {
				for name, p := range props {
					target, ok := refs[name]
					if !ok {
						continue
					}
					if strings.HasPrefix(path, "components.schemas.Operation.") {
						target = "OperationStatus"
					}
					if strings.HasPrefix(path, "components.schemas.Move.") {
						target = "MoveStatus"
					}
					if strings.HasPrefix(path, "components.schemas.Signup.") {
						target = "SignupStatus"
					}
					if strings.HasPrefix(path, "components.schemas.Domain.") {
						target = "DomainStatus"
					}
					if strings.HasPrefix(path, "paths.") && name == "status" {
						continue // health probes answer {"status": "ok"}
					}
					ref, _ := p.(map[string]any)["$ref"].(string)
					if ref != "#/components/schemas/"+target {
						t.Errorf("controlplane/api/openapi.json: %sproperties.%s is %v, want {\"$ref\": \"#/components/schemas/%s\"}", path, name, p, target)
					}
					seen[target]++
				}
			}
			for k, e := range v {
				walk(path+k+".", e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s%d.", path, i), e)
			}
		}
	}
	walk("", doc)
	for _, target := range []string{"TenantStatus", "LastMigrationStatus", "OperationStatus", "Plan"} {
		if seen[target] == 0 {
			t.Errorf("no property of openapi.json refers to %s", target)
		}
	}
}

func names[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}
