package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/customdomains"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Domain is one hostname of a tenant with its verification state. Only a
// verified domain routes. Challenge is the DNS record that verifies it,
// for a domain added by its owner; the default domain and those an
// operator added have none and are never checked.
type Domain struct {
	Hostname   string               `json:"hostname"`
	Default    bool                 `json:"default"`
	Status     tenancy.DomainStatus `json:"status"`
	Challenge  *Challenge           `json:"challenge,omitempty"`
	AddedBy    *string              `json:"added_by"`
	CheckedAt  *time.Time           `json:"checked_at"`
	CheckError *string              `json:"check_error"`
	Misses     int                  `json:"misses"` // consecutive checks that found no record
	VerifiedAt *time.Time           `json:"verified_at"`
	// ExpiresAt: when the checker removes a claim that has never verified,
	// if its record is still not found (stored by the checker on each
	// check; nil once verified, and before the first check).
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
}

// Challenge is the TXT record an owner publishes to verify a domain.
type Challenge struct {
	Type  string `json:"type"` // TXT
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ChallengeFor returns the record that verifies hostname with token.
func ChallengeFor(hostname, token string) *Challenge {
	return &Challenge{Type: "TXT", Name: customdomains.RecordName(hostname), Value: customdomains.RecordValue(token)}
}

// DomainColumns are the columns ScanDomain reads, from domains d.
const DomainColumns = `d.hostname, d.is_default, d.status, d.token, d.added_by, d.checked_at, d.check_error, d.misses,
	d.verified_at, d.expires_at, d.created_at`

// ScanDomain reads one row of DomainColumns.
func ScanDomain(row pgx.Row) (Domain, error) {
	var d Domain
	var token *string
	err := row.Scan(&d.Hostname, &d.Default, &d.Status, &token, &d.AddedBy, &d.CheckedAt, &d.CheckError, &d.Misses,
		&d.VerifiedAt, &d.ExpiresAt, &d.CreatedAt)
	if token != nil {
		d.Challenge = ChallengeFor(d.Hostname, *token)
	}
	return d, err
}

// Domains lists a tenant's domains, the default first.
func (r *Registry) Domains(ctx context.Context, tenantID int64) ([]Domain, error) {
	rows, err := r.db.Query(ctx, `SELECT `+DomainColumns+` FROM domains d WHERE d.tenant_id = $1
		ORDER BY d.is_default DESC, d.hostname`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("tenant %d: domains: %w", tenantID, err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Domain, error) { return ScanDomain(row) })
	if err != nil {
		return nil, fmt.Errorf("tenant %d: domains: %w", tenantID, err)
	}
	return ds, nil
}

// DomainCheck is a domain claimed for a DNS check.
type DomainCheck struct {
	Hostname string
	TenantID int64
	Token    string
	Status   tenancy.DomainStatus
}

// ClaimDomainChecks takes up to n domains whose check is due and moves
// their next check one interval ahead, in one statement: a replica that
// claims them holds them until then, so replicas do not check the same
// domain twice, and one that dies leaves them due again an interval later.
func (r *Registry) ClaimDomainChecks(ctx context.Context, n int, interval time.Duration) ([]DomainCheck, error) {
	rows, err := r.db.Query(ctx, `
UPDATE domains d SET next_check_at = now() + make_interval(secs => $2)
 WHERE (d.hostname, d.tenant_id) IN (SELECT hostname, tenant_id FROM domains WHERE next_check_at <= now()
                                      ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING d.hostname, d.tenant_id, d.token, d.status`, n, interval.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim domain checks: %w", err)
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DomainCheck])
	if err != nil {
		return nil, fmt.Errorf("claim domain checks: %w", err)
	}
	return cs, nil
}

// CheckOutcome is what one DNS check of a domain saw.
type CheckOutcome struct {
	Found bool // the TXT record with the domain's token was served
	// Inconclusive: the resolver did not answer (timeout, SERVFAIL); such
	// a check is recorded but is no miss.
	Inconclusive bool
	Error        string // for the owner: why the record was not found
}

// CheckRules are the checker's thresholds.
type CheckRules struct {
	// UnrouteAfter consecutive conclusive checks without the record send a
	// verified domain back to pending.
	UnrouteAfter int
	// ClaimExpiry: a claim pending this long since it was added, never
	// verified, is removed by a check that does not find its record.
	ClaimExpiry time.Duration
}

// DomainExpired is what RecordDomainCheck answers for a claim it removed
// because it expired; it is never stored.
const DomainExpired tenancy.DomainStatus = "expired"

// heldElsewhere is the check error of a claim whose record is served while
// another shop's claim of the hostname is the verified one.
const heldElsewhere = "the record is served, but the domain is verified by another shop, which must remove it (or lose its own record) first"

// RecordDomainCheck stores a check's outcome and returns the domain's
// status after it: a found record verifies the domain, unless another
// shop's claim of the hostname is verified (then it stays pending, saying
// so); a verified domain whose record is missing on rules.UnrouteAfter
// consecutive conclusive checks goes back to pending and stops routing; a
// claim never verified and older than rules.ClaimExpiry whose record is
// not found is removed (DomainExpired). A domain removed (or removed and
// added again with another token) since its claim is left alone
// (ErrNotFound). A change of status is audited and bumps the tenant's
// generation in the same transaction.
func (r *Registry) RecordDomainCheck(ctx context.Context, c DomainCheck, o CheckOutcome, rules CheckRules) (tenancy.DomainStatus, error) {
	var status tenancy.DomainStatus
	err := Transact(ctx, r.db, func(tx pgx.Tx) error {
		// Every claim of the hostname is locked, so two shops' checks of
		// one name are recorded one after the other.
		if _, err := tx.Exec(ctx, `SELECT FROM domains WHERE hostname = $1 FOR UPDATE`, c.Hostname); err != nil {
			return err
		}
		var misses int
		var expired, heldByOther bool
		err := tx.QueryRow(ctx, `
SELECT d.status, d.misses,
       d.verified_at IS NULL AND d.status = 'pending' AND d.created_at < now() - make_interval(secs => $4),
       EXISTS (SELECT FROM domains o WHERE o.hostname = d.hostname AND o.tenant_id <> d.tenant_id AND o.status = 'verified')
  FROM domains d
 WHERE d.hostname = $1 AND d.tenant_id = $2 AND d.token = $3`,
			c.Hostname, c.TenantID, c.Token, rules.ClaimExpiry.Seconds()).Scan(&status, &misses, &expired, &heldByOther)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain %s: %w", c.Hostname, ErrNotFound)
		}
		if err != nil {
			return err
		}
		before := status
		var checkErr *string
		switch {
		case o.Found && heldByOther:
			held := heldElsewhere
			checkErr = &held
		case o.Found:
			status, misses = tenancy.DomainVerified, 0
		case o.Inconclusive:
			checkErr = &o.Error
		case expired:
			status = DomainExpired
		default:
			checkErr = &o.Error
			misses++
			if status == tenancy.DomainVerified && misses >= rules.UnrouteAfter {
				status = tenancy.DomainPending
			}
		}
		if status == DomainExpired {
			if _, err := tx.Exec(ctx, `DELETE FROM domains WHERE hostname = $1 AND tenant_id = $2`, c.Hostname, c.TenantID); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `UPDATE domains SET status = $3, misses = $4, check_error = $5, checked_at = now(),
			verified_at = CASE WHEN $3 = 'verified' THEN coalesce(verified_at, now()) ELSE verified_at END,
			expires_at = CASE WHEN $3 <> 'verified' AND verified_at IS NULL THEN created_at + make_interval(secs => $6) END
			WHERE hostname = $1 AND tenant_id = $2`, c.Hostname, c.TenantID, status, misses, checkErr, rules.ClaimExpiry.Seconds()); err != nil {
			return err
		}
		if status == before {
			return nil
		}
		action := "domain.verified"
		switch status {
		case tenancy.DomainPending:
			action = "domain.unrouted"
		case DomainExpired:
			action = "domain.expired"
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, action, tenant_id, before, after)
			VALUES ('domain-checker', $1, $2, jsonb_build_object('hostname', $3::text, 'status', $4::text),
			        jsonb_build_object('hostname', $3::text, 'status', $5::text, 'misses', $6::int))`,
			action, c.TenantID, c.Hostname, before, status, misses); err != nil {
			return err
		}
		return r.With(tx).touch(ctx, c.TenantID)
	})
	if err != nil {
		return "", fmt.Errorf("domain %s: record check: %w", c.Hostname, err)
	}
	return status, nil
}
