package tenancy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"testing"
)

// declared returns the names and values of the constants of type typ that
// tenancy.go declares, read from its source.
func declared(t *testing.T, typ string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "tenancy.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			v := spec.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != typ {
				continue
			}
			for i, name := range v.Names {
				lit, ok := v.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("tenancy.go: constant %s is not a string literal", name.Name)
				}
				out[name.Name] = lit.Value[1 : len(lit.Value)-1]
			}
		}
	}
	return out
}

// Every Status constant is in lifecycle, once, with a routing class: a
// status cannot be declared without saying what the data plane does with it.
func TestEveryStatusIsInLifecycleAndClassified(t *testing.T) {
	t.Parallel()
	consts := declared(t, "Status")
	if len(consts) == 0 {
		t.Fatal("tenancy.go declares no Status constants")
	}
	listed := Statuses()
	for name, value := range consts {
		if !slices.Contains(listed, Status(value)) {
			t.Errorf("platform/tenancy/tenancy.go: status %s (%q) is declared but has no row in lifecycle; add one with its routing class (Serve, Unavailable or Gone)", name, value)
		}
	}
	word := regexp.MustCompile(`^[a-z]+$`)
	seen := map[Status]bool{}
	for _, l := range lifecycle {
		if seen[l.status] {
			t.Errorf("platform/tenancy/tenancy.go: status %q has two rows in lifecycle", l.status)
		}
		seen[l.status] = true
		if l.routing == unclassified {
			t.Errorf("platform/tenancy/tenancy.go: status %q has no routing class in lifecycle; want Serve, Unavailable or Gone", l.status)
		}
		if !word.MatchString(string(l.status)) {
			t.Errorf("status %q: want one lowercase word", l.status)
		}
		if !l.status.Valid() || l.status.Routing() != l.routing {
			t.Errorf("status %q: Valid %v, Routing %v; want true, %v", l.status, l.status.Valid(), l.status.Routing(), l.routing)
		}
	}
	if len(seen) != len(consts) {
		t.Errorf("lifecycle has %d statuses, tenancy.go declares %d constants of type Status", len(seen), len(consts))
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	for s, want := range map[Status]Routing{
		Provisioning: Gone, Active: Serve, Suspended: Unavailable, Failed: Gone, Deleting: Gone, Deleted: Gone,
		"": Gone, "no-such-status": Gone, "ACTIVE": Gone,
	} {
		if got := s.Routing(); got != want {
			t.Errorf("Status(%q).Routing() = %v, want %v", s, got, want)
		}
		if s.Serving() != (want == Serve) {
			t.Errorf("Status(%q).Serving() = %v", s, s.Serving())
		}
	}
	if Status("no-such-status").Valid() || Status("").Valid() {
		t.Error("an unknown status is Valid")
	}
}

func TestOtherEnumsListEveryConstant(t *testing.T) {
	t.Parallel()
	check := func(typ string, listed []string) {
		consts := declared(t, typ)
		for name, value := range consts {
			if !slices.Contains(listed, value) {
				t.Errorf("platform/tenancy/tenancy.go: %s %s (%q) is declared but missing from %ss()", typ, name, value, typ)
			}
		}
		if len(consts) != len(listed) {
			t.Errorf("%ss() = %v, but tenancy.go declares %d constants of type %s", typ, listed, len(consts), typ)
		}
	}
	check("MigrationStatus", asStrings(MigrationStatuses()))
	check("OperationStatus", asStrings(OperationStatuses()))
	check("DomainStatus", asStrings(DomainStatuses()))
}

func asStrings[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

func TestSlugAndPlan(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"ab": true, "healthtech": true, "a-1": true, "a": false, "1a": false, "ab-": false, "Ab": false,
		"a2345678901234567890123456789012345678901": false, "a23456789012345678901234567890123456789": true,
	} {
		if ValidSlug(s) != want {
			t.Errorf("ValidSlug(%q) = %v", s, !want)
		}
	}
	if !ValidPlan(DefaultPlan) {
		t.Errorf("DefaultPlan %q is not a valid plan", DefaultPlan)
	}
	for p, want := range map[string]bool{"standard": true, "1": true, "pro-2": true, "": false, "-x": false, "Pro": false} {
		if ValidPlan(p) != want {
			t.Errorf("ValidPlan(%q) = %v", p, !want)
		}
	}
}
