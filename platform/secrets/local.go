package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MasterKeySize is the length in bytes of the local backend's AES-256 key.
const MasterKeySize = 32

// ErrEmptyValue is returned by Put for an empty value: Secrets Manager cannot
// hold one, so no backend accepts it.
var ErrEmptyValue = errors.New("empty secret value")

// Local keeps secrets in the platform database's secrets table, each version
// sealed with AES-256-GCM under the master key. The name and the version are
// bound into every ciphertext as additional data, so a row copied to another
// name or version does not open.
type Local struct {
	pool *pgxpool.Pool
	aead cipher.AEAD
}

var _ Store = (*Local)(nil)

// NewLocal returns the local backend on pool (the platform database) with the
// 32-byte masterKey.
func NewLocal(pool *pgxpool.Pool, masterKey []byte) (*Local, error) {
	if pool == nil {
		return nil, errors.New("local secrets: no database pool")
	}
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("local secrets: master key is %d bytes, want %d", len(masterKey), MasterKeySize)
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("local secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("local secrets: %w", err)
	}
	return &Local{pool: pool, aead: aead}, nil
}

// ParseMasterKey decodes a master key given as base64 (standard or URL
// alphabet, padded or not) of exactly 32 bytes. Its errors never quote s.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("master key: empty; want base64 of 32 random bytes")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != MasterKeySize {
			return nil, fmt.Errorf("master key: decodes to %d bytes, want %d", len(key), MasterKeySize)
		}
		return key, nil
	}
	return nil, errors.New("master key: not valid base64; want base64 of 32 random bytes")
}

// GenerateMasterKey returns a new random master key in standard base64, the
// form ParseMasterKey reads.
func GenerateMasterKey() string {
	key := make([]byte, MasterKeySize)
	_, _ = rand.Read(key) // never fails; see crypto/rand.Read
	return base64.StdEncoding.EncodeToString(key)
}

// additionalData binds a ciphertext to its secret's name and version.
// The name is length-prefixed so no two (name, version) pairs collide.
func additionalData(name string, version int) []byte {
	ad := make([]byte, 0, len("swa-secret")+binary.MaxVarintLen64+len(name)+8)
	ad = append(ad, "swa-secret"...)
	ad = binary.AppendUvarint(ad, uint64(len(name)))
	ad = append(ad, name...)
	return binary.BigEndian.AppendUint64(ad, uint64(version))
}

func (l *Local) seal(name string, version int, value []byte) (nonce, ciphertext []byte) {
	nonce = make([]byte, l.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return nonce, l.aead.Seal(nil, nonce, value, additionalData(name, version))
}

func (l *Local) open(name string, version int, nonce, ciphertext []byte) ([]byte, error) {
	if len(nonce) != l.aead.NonceSize() {
		return nil, fmt.Errorf("version %d: malformed nonce", version)
	}
	// The AEAD's own error says nothing about the plaintext, but a fixed
	// message is clearer about the likely causes.
	value, err := l.aead.Open(nil, nonce, ciphertext, additionalData(name, version))
	if err != nil {
		return nil, fmt.Errorf("version %d: cannot decrypt (wrong master key, or the row was altered or moved)", version)
	}
	return value, nil
}

// Concurrent Puts of one name queue on a transaction-scoped advisory lock in
// a key space of their own (the two-int form, class lockClassSecrets), so
// each reads the newest version only after the previous writer committed.
// The primary key stays the last guard.
const (
	lockClassSecrets = 0x53574153 // "SWAS"

	qLockName    = `SELECT pg_advisory_xact_lock($1, hashtext($2))`
	qNextVersion = `SELECT coalesce(max(version), 0) + 1 FROM secrets WHERE name = $1`
	qInsert      = `INSERT INTO secrets (name, version, nonce, ciphertext) VALUES ($1, $2, $3, $4)`
)

// Put stores value as the newest version of name.
func (l *Local) Put(ctx context.Context, name string, value []byte) (int, error) {
	if err := checkPut(name, value); err != nil {
		return 0, err
	}
	version, err := l.put(ctx, name, value)
	if err != nil {
		return 0, fmt.Errorf("put secret %s: %w", name, err)
	}
	return version, nil
}

func (l *Local) put(ctx context.Context, name string, value []byte) (version int, err error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, qLockName, int32(lockClassSecrets), name); err != nil {
		return 0, fmt.Errorf("lock: %w", err)
	}
	if err := tx.QueryRow(ctx, qNextVersion, name).Scan(&version); err != nil {
		return 0, fmt.Errorf("next version: %w", err)
	}
	nonce, ciphertext := l.seal(name, version, value)
	if _, err := tx.Exec(ctx, qInsert, name, version, nonce, ciphertext); err != nil {
		return 0, fmt.Errorf("insert version %d: %w", version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return version, nil
}

const qNewest = `SELECT version, nonce, ciphertext FROM secrets WHERE name = $1 ORDER BY version DESC LIMIT 1`

// Get returns the newest version of name, or ErrNotFound.
func (l *Local) Get(ctx context.Context, name string) ([]byte, error) {
	value, err := l.read(ctx, name, qNewest, name)
	if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	return value, nil
}

const qVersion = `SELECT version, nonce, ciphertext FROM secrets WHERE name = $1 AND version = $2`

// GetVersion returns one version of name, or ErrNotFound.
func (l *Local) GetVersion(ctx context.Context, name string, version int) ([]byte, error) {
	value, err := l.read(ctx, name, qVersion, name, version)
	if err != nil {
		return nil, fmt.Errorf("get secret %s version %d: %w", name, version, err)
	}
	return value, nil
}

func (l *Local) read(ctx context.Context, name, query string, args ...any) ([]byte, error) {
	var (
		version           int
		nonce, ciphertext []byte
	)
	err := l.pool.QueryRow(ctx, query, args...).Scan(&version, &nonce, &ciphertext)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return l.open(name, version, nonce, ciphertext)
}

const qVersions = `SELECT version FROM secrets WHERE name = $1 ORDER BY version`

// Versions lists the versions of name, oldest first.
func (l *Local) Versions(ctx context.Context, name string) ([]int, error) {
	rows, err := l.pool.Query(ctx, qVersions, name)
	if err != nil {
		return nil, fmt.Errorf("list versions of secret %s: %w", name, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("list versions of secret %s: %w", name, err)
	}
	if versions == nil {
		versions = []int{}
	}
	return versions, nil
}

const qDelete = `DELETE FROM secrets WHERE name = $1`

// Delete removes every version of name; a missing name is not an error.
func (l *Local) Delete(ctx context.Context, name string) error {
	if _, err := l.pool.Exec(ctx, qDelete, name); err != nil {
		return fmt.Errorf("delete secret %s: %w", name, err)
	}
	return nil
}

// checkPut rejects what no backend can store.
func checkPut(name string, value []byte) error {
	if name == "" {
		return errors.New("put secret: empty name")
	}
	if len(value) == 0 {
		return fmt.Errorf("put secret %s: %w", name, ErrEmptyValue)
	}
	return nil
}
