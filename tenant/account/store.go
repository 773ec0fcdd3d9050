package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/platform/csrf"
)

// querier is a connection or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// member is an account with its member row.
type member struct {
	AccountID    int64
	MemberID     int64
	Username     string
	PasswordHash string
	FirstName    string
	LastName     string
	Email        string
	IsActive     bool
	LastLogin    *time.Time
	DateJoined   time.Time

	NewsletterSubscriber bool
	EmailVerified        bool
	EmailUnsubscribed    bool
	VerificationString   *string
	VerificationSigned   *string
	UnsubscribeString    *string
	ResetString          *string
	MbCd                 *string
}

func (m *member) passwordUser() PasswordUser {
	return PasswordUser{Username: m.Username, FirstName: m.FirstName, LastName: m.LastName, Email: m.Email}
}

const memberColumns = `a.id, m.id, a.username, a.password_hash, a.first_name, a.last_name, a.email, a.is_active,
a.last_login, a.date_joined, m.newsletter_subscriber, m.email_verified, m.email_unsubscribed,
m.email_verification_string, m.email_verification_string_signed, m.email_unsubscribe_string,
m.reset_password_string, m.mb_cd
FROM account a JOIN member m ON m.account_id = a.id`

func scanMember(row pgx.Row) (*member, error) {
	var m member
	err := row.Scan(&m.AccountID, &m.MemberID, &m.Username, &m.PasswordHash, &m.FirstName, &m.LastName, &m.Email,
		&m.IsActive, &m.LastLogin, &m.DateJoined, &m.NewsletterSubscriber, &m.EmailVerified, &m.EmailUnsubscribed,
		&m.VerificationString, &m.VerificationSigned, &m.UnsubscribeString, &m.ResetString, &m.MbCd)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read member: %w", err)
	}
	return &m, nil
}

const memberByAccountSQL = `SELECT ` + memberColumns + ` WHERE a.id = $1`

func memberByAccount(ctx context.Context, q querier, accountID int64) (*member, error) {
	return scanMember(q.QueryRow(ctx, memberByAccountSQL, accountID))
}

func memberByUsername(ctx context.Context, q querier, username string) (*member, error) {
	return scanMember(q.QueryRow(ctx, `SELECT `+memberColumns+` WHERE a.username = $1`, username))
}

func usernameTaken(ctx context.Context, q querier, username string) (bool, error) {
	var taken bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM account WHERE username = $1)`, username).Scan(&taken)
	return taken, err
}

// newUnsubscribe returns a fresh unsubscribe string and its public token.
func newUnsubscribe(s *Signer) (str, token string) {
	str = RandomString(20)
	return str, s.UnsubscribeToken(str)
}

// newVerification stores a fresh e-mail verification code on the member
// and returns it.
func newVerification(ctx context.Context, tx pgx.Tx, s *Signer, memberID int64) (string, error) {
	str := RandomString(20)
	code := s.VerificationCode(str)
	_, err := tx.Exec(ctx, `UPDATE member SET email_verification_string = $2, email_verification_string_signed = $3 WHERE id = $1`,
		memberID, str, code)
	if err != nil {
		return "", fmt.Errorf("store verification code: %w", err)
	}
	return code, nil
}

// setPassword stores a new password hash.
func setPassword(ctx context.Context, tx pgx.Tx, accountID int64, hash string) error {
	if _, err := tx.Exec(ctx, `UPDATE account SET password_hash = $2 WHERE id = $1`, accountID, hash); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}

// latestTerms is the Terms-of-Use row with the highest version.
func latestTerms(ctx context.Context, q querier) (id int64, version int, note *string, err error) {
	err = q.QueryRow(ctx, `SELECT id, version, version_note FROM terms_of_use_version ORDER BY version DESC, id DESC LIMIT 1`).
		Scan(&id, &version, &note)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("latest terms of use: %w", err)
	}
	return id, version, note, nil
}

func rotateCSRF(c *fiber.Ctx) { csrf.Rotate(c) }
