// Package tenancy is the vocabulary both planes share about a tenant: its
// statuses and what each means for routing, the outcome of its last
// migration and of admin operations on it, and the rules for its slug and
// plan. The registry's CHECK
// constraints, the admin API's OpenAPI document and the data plane's
// directory are tested against (or derived from) this package, so a status
// added here cannot silently become a 404 somewhere else.
package tenancy

import "regexp"

// Status is where a tenant is in its life, as stored in tenants.status.
type Status string

// Tenant statuses, in the order a tenant passes through them.
const (
	Provisioning Status = "provisioning" // being created; not routed yet
	Active       Status = "active"       // routed and served
	Suspended    Status = "suspended"    // routed but answered 503
	Failed       Status = "failed"       // creation stopped at a step; retry resumes it
	Deleting     Status = "deleting"     // being torn down
	Deleted      Status = "deleted"      // gone; the row stays so the slug stays taken
)

// Routing is what a tenant's status means for a request that reaches the
// data plane on one of its hosts.
type Routing int

// Routing classes. The zero value is no class, so a status left out of
// lifecycle is caught by the package's tests rather than routed by accident.
const (
	unclassified Routing = iota
	Serve                // requests are answered
	Unavailable          // the site exists but is switched off: 503
	Gone                 // not (or no longer) a site: 404, like an unknown host
)

func (r Routing) String() string {
	switch r {
	case Serve:
		return "serve"
	case Unavailable:
		return "unavailable"
	case Gone:
		return "gone"
	default:
		return "unclassified"
	}
}

// lifecycle is the one list of tenant statuses, in order, with the routing
// class of each. Adding a status is adding its constant and a row here; the
// tests then name each file that must follow (a platform migration for the
// CHECK constraint, controlplane/api/openapi.json for the enum).
var lifecycle = [...]struct {
	status  Status
	routing Routing
}{
	{Provisioning, Gone},
	{Active, Serve},
	{Suspended, Unavailable},
	{Failed, Gone},
	{Deleting, Gone},
	{Deleted, Gone},
}

// Statuses returns every tenant status, in lifecycle order.
func Statuses() []Status {
	out := make([]Status, len(lifecycle))
	for i, l := range lifecycle {
		out[i] = l.status
	}
	return out
}

// Valid reports whether s is one of Statuses().
func (s Status) Valid() bool {
	for _, l := range lifecycle {
		if l.status == s {
			return true
		}
	}
	return false
}

// Routing returns what s means for requests. A status this binary does not
// know (a newer control plane wrote it) is Gone: refusing is the safe
// reading of a state nobody here has classified.
func (s Status) Routing() Routing {
	for _, l := range lifecycle {
		if l.status == s {
			return l.routing
		}
	}
	return Gone
}

// Serving reports whether requests for a tenant in status s are answered.
func (s Status) Serving() bool { return s.Routing() == Serve }

// MigrationStatus is the outcome of the last migration of a tenant's
// database, as stored in tenants.last_migration_status.
type MigrationStatus string

// Migration outcomes.
const (
	MigrationOK     MigrationStatus = "ok"
	MigrationFailed MigrationStatus = "failed"
)

// MigrationStatuses returns every migration outcome.
func MigrationStatuses() []MigrationStatus { return []MigrationStatus{MigrationOK, MigrationFailed} }

// OperationStatus is the state of a long-running admin operation on a
// tenant (create, fork, delete, migrate...), as stored in operations.status.
type OperationStatus string

// Operation states.
const (
	OperationQueued    OperationStatus = "queued" // accepted, waiting for a worker
	OperationRunning   OperationStatus = "running"
	OperationSucceeded OperationStatus = "succeeded"
	OperationFailed    OperationStatus = "failed"
)

// OperationStatuses returns every operation state.
func OperationStatuses() []OperationStatus {
	return []OperationStatus{OperationQueued, OperationRunning, OperationSucceeded, OperationFailed}
}

// DomainStatus is whether a hostname of a tenant routes, as stored in
// domains.status: only verified domains route; a pending one waits for its
// DNS TXT record (or has lost it) and answers as an unknown host.
type DomainStatus string

// Domain verification states.
const (
	DomainPending  DomainStatus = "pending"
	DomainVerified DomainStatus = "verified"
)

// DomainStatuses returns every domain verification state.
func DomainStatuses() []DomainStatus { return []DomainStatus{DomainPending, DomainVerified} }

// SlugPattern is the rule for a tenant slug: 2 to 40 characters of a-z, 0-9
// and '-', starting with a letter and not ending with '-'. The slug names
// the tenant's host ({slug}.{base domain}), database and Redis key space.
const SlugPattern = `^[a-z][a-z0-9-]{0,38}[a-z0-9]$`

// PlanPattern is the rule for a plan name: 1 to 40 characters of a-z, 0-9
// and '-', not starting with '-'. Plans are labels; no fixed set yet.
const PlanPattern = `^[a-z0-9][a-z0-9-]{0,39}$`

// DefaultPlan is the plan of a tenant created without one.
const DefaultPlan = "standard"

var (
	slugRE = regexp.MustCompile(SlugPattern)
	planRE = regexp.MustCompile(PlanPattern)
)

// ValidSlug reports whether s matches SlugPattern.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// ValidPlan reports whether p matches PlanPattern.
func ValidPlan(p string) bool { return planRE.MatchString(p) }
