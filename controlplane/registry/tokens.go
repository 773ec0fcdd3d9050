package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrUnauthorized is returned by VerifyToken for an unknown or revoked
// token. The API maps it to 401.
var ErrUnauthorized = errors.New("invalid or revoked token")

// TokenInfo describes an admin token, never its value.
type TokenInfo struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// tokenPrefix marks admin tokens, so a leaked one is easy to recognise.
const tokenPrefix = "swa_"

func tokenHash(plaintext string) []byte {
	h := sha256.Sum256([]byte(plaintext))
	return h[:]
}

// CreateToken makes a new admin token called name and returns its value,
// which is shown once (only its SHA-256 is stored), and its description.
func (r *Registry) CreateToken(ctx context.Context, name string) (string, TokenInfo, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", TokenInfo{}, invalid("name", "want 1-100 characters")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", TokenInfo{}, fmt.Errorf("create token: %w", err)
	}
	plain := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	var info TokenInfo
	err := r.db.QueryRow(ctx, `INSERT INTO admin_tokens (name, token_hash) VALUES ($1, $2)
		RETURNING id, name, created_at, last_used_at, revoked_at`, name, tokenHash(plain)).
		Scan(&info.ID, &info.Name, &info.CreatedAt, &info.LastUsedAt, &info.RevokedAt)
	if err != nil {
		return "", TokenInfo{}, fmt.Errorf("create token %s: %w", name, err)
	}
	return plain, info, nil
}

// EnsureBootstrapToken registers plaintext (SWA_ADMIN_TOKEN) as a token
// named "bootstrap" if it is not registered yet. A revoked bootstrap token
// stays revoked.
func (r *Registry) EnsureBootstrapToken(ctx context.Context, plaintext string) error {
	if len(plaintext) < 16 {
		return invalid("admin_token", "want at least 16 characters")
	}
	if _, err := r.db.Exec(ctx, `INSERT INTO admin_tokens (name, token_hash) VALUES ('bootstrap', $1)
		ON CONFLICT (token_hash) DO NOTHING`, tokenHash(plaintext)); err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	return nil
}

// VerifyToken returns the live token whose value is plaintext and records
// its use, or ErrUnauthorized.
func (r *Registry) VerifyToken(ctx context.Context, plaintext string) (TokenInfo, error) {
	if plaintext == "" {
		return TokenInfo{}, ErrUnauthorized
	}
	want := tokenHash(plaintext)
	var (
		info   TokenInfo
		stored []byte
	)
	// The lookup is by hash, so timing reveals nothing about the token; the
	// comparison below is a second, constant-time check of the stored hash.
	err := r.db.QueryRow(ctx, `UPDATE admin_tokens SET last_used_at = now()
		WHERE token_hash = $1 AND revoked_at IS NULL
		RETURNING id, name, created_at, last_used_at, revoked_at, token_hash`, want).
		Scan(&info.ID, &info.Name, &info.CreatedAt, &info.LastUsedAt, &info.RevokedAt, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return TokenInfo{}, ErrUnauthorized
	}
	if err != nil {
		return TokenInfo{}, fmt.Errorf("verify token: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, want) != 1 {
		return TokenInfo{}, ErrUnauthorized
	}
	return info, nil
}

// LookupToken is VerifyToken without the last_used_at write, for callers
// that stamp usage less often than they authenticate.
func (r *Registry) LookupToken(ctx context.Context, plaintext string) (TokenInfo, error) {
	if plaintext == "" {
		return TokenInfo{}, ErrUnauthorized
	}
	want := tokenHash(plaintext)
	var (
		info   TokenInfo
		stored []byte
	)
	err := r.db.QueryRow(ctx, `SELECT id, name, created_at, last_used_at, revoked_at, token_hash
		FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL`, want).
		Scan(&info.ID, &info.Name, &info.CreatedAt, &info.LastUsedAt, &info.RevokedAt, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return TokenInfo{}, ErrUnauthorized
	}
	if err != nil {
		return TokenInfo{}, fmt.Errorf("look up token: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, want) != 1 {
		return TokenInfo{}, ErrUnauthorized
	}
	return info, nil
}

// Tokens lists admin tokens (never their values), newest first.
func (r *Registry) Tokens(ctx context.Context) ([]TokenInfo, error) {
	rows, err := r.db.Query(ctx, `SELECT id, name, created_at, last_used_at, revoked_at FROM admin_tokens ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[TokenInfo])
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken stops a token from working; an unknown id is ErrNotFound.
func (r *Registry) RevokeToken(ctx context.Context, id int64) error {
	tag, err := r.db.Exec(ctx, `UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	return nil
}
