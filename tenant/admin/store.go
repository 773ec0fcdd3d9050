package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/tenant/account"
)

// Roles. An owner can do everything, including managing staff and settings;
// staff can do the rest.
const (
	RoleOwner = "owner"
	RoleStaff = "staff"
)

func validRole(r string) bool { return r == RoleOwner || r == RoleStaff }

// querier is a connection or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// staffRow is one staff member as stored.
type staffRow struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash string
	Role         string
	Active       bool
	FailedLogins int
	LockedUntil  *time.Time
	LastLogin    *time.Time
	TOTPSecret   []byte
	TOTPEnabled  bool
	TOTPLastStep *int64
	CreatedAt    time.Time
}

// staffJSON is what the API shows of a staff member: never a hash or secret.
type staffJSON struct {
	ID          int64      `json:"id"`
	Email       string     `json:"email"`
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	Active      bool       `json:"active"`
	TOTPEnabled bool       `json:"totp_enabled"`
	LastLogin   *time.Time `json:"last_login"`
	CreatedAt   time.Time  `json:"created_at"`
}

func (s *staffRow) public() staffJSON {
	return staffJSON{ID: s.ID, Email: s.Email, Name: s.Name, Role: s.Role, Active: s.Active,
		TOTPEnabled: s.TOTPEnabled, LastLogin: s.LastLogin, CreatedAt: s.CreatedAt}
}

const staffColumns = `id, email, name, password_hash, role, is_active, failed_logins, locked_until, last_login,
totp_secret, totp_enabled, totp_last_step, created_at FROM staff`

func scanStaff(row pgx.Row) (*staffRow, error) {
	var s staffRow
	err := row.Scan(&s.ID, &s.Email, &s.Name, &s.PasswordHash, &s.Role, &s.Active, &s.FailedLogins, &s.LockedUntil,
		&s.LastLogin, &s.TOTPSecret, &s.TOTPEnabled, &s.TOTPLastStep, &s.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read staff: %w", err)
	}
	return &s, nil
}

func staffByID(ctx context.Context, q querier, id int64) (*staffRow, error) {
	return scanStaff(q.QueryRow(ctx, `SELECT `+staffColumns+` WHERE id = $1`, id))
}

func staffByEmail(ctx context.Context, q querier, email string) (*staffRow, error) {
	return scanStaff(q.QueryRow(ctx, `SELECT `+staffColumns+` WHERE lower(email) = lower($1)`, email))
}

// CreateOwner adds an owner with a password (the first owner of a tenant:
// `swa dev`, tests), unless a staff member with the address exists. It
// reports whether it created one. The password must pass the members'
// policy. The creation is audited as done by actor.
func CreateOwner(ctx context.Context, tx pgx.Tx, hasher *account.Hasher, email, name, password, actor string) (bool, error) {
	if ae := checkPassword(password, password, email, name); ae != nil {
		return false, ae
	}
	if r := account.ValidateEmail(email); !r.OK() {
		return false, invalid("email", r[0].Description)
	}
	hash, err := hasher.Hash(password)
	if err != nil {
		return false, err
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO staff (email, name, password_hash, role) VALUES ($1, $2, $3, 'owner')
ON CONFLICT (lower(email)) DO NOTHING RETURNING id`, email, name, hash).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create owner: %w", err)
	}
	err = writeAudit(ctx, tx, auditEntry{Actor: actor, Action: "staff.created", TargetType: "staff", TargetID: id,
		After: map[string]any{"email": email, "name": name, "role": RoleOwner}})
	return err == nil, err
}

// checkPassword applies the members' password policy: the contract's rules
// (length, a capital, a special character, confirmation), then Django's.
func checkPassword(pw, confirm, email, name string) *apiError {
	r := account.ValidatePassword(pw, confirm)
	if r.OK() {
		first, last, _ := strings.Cut(name, " ")
		r = account.PasswordRules(pw, account.PasswordUser{Username: email, FirstName: first, LastName: last, Email: email})
	}
	if r.OK() {
		return nil
	}
	msgs := make([]string, len(r))
	for i, e := range r {
		msgs[i] = e.Description
	}
	return &apiError{Status: 400, Code: "password-policy", Detail: strings.Join(msgs, " "), Field: "password"}
}

// newToken returns a random URL-safe token and its digest, as stored.
func newToken(prefix string) (token string, digest []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, tokenDigest(token)
}

// tokenDigest is what the database keeps of a token: tokens carry 256 bits,
// so a plain SHA-256 suffices.
func tokenDigest(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
