package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

func newLocal(t testing.TB) (*secrets.Local, *pgxpool.Pool, []byte) {
	t.Helper()
	pool := pgtest.NewPool(t, migrations.Platform)
	key, err := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	l, err := secrets.NewLocal(pool, key)
	if err != nil {
		t.Fatal(err)
	}
	return l, pool, key
}

func TestLocalStore(t *testing.T) {
	t.Parallel()
	l, _, _ := newLocal(t)
	testStore(t, l, func() string { return pgtest.RandomName("swa/test/") })
}

func TestLocalConcurrentPuts(t *testing.T) {
	t.Parallel()
	l, _, _ := newLocal(t)
	testConcurrentPuts(t, l, "swa/tenants/concurrent", 50)
}

func TestLocalWrongKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, pool, _ := newLocal(t)
	value := []byte("wrong-key-plaintext-71c2")
	if _, err := l.Put(ctx, "swa/tenants/acme", value); err != nil {
		t.Fatal(err)
	}
	other, err := secrets.NewLocal(pool, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.Get(ctx, "swa/tenants/acme")
	if err == nil || errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get with another key = %q, %v; want a decryption error", got, err)
	}
	if !strings.Contains(err.Error(), "swa/tenants/acme") || !strings.Contains(err.Error(), "get secret") {
		t.Errorf("error %q does not name the operation and the secret", err)
	}
	noValue(t, err, value)
	if _, err := other.GetVersion(ctx, "swa/tenants/acme", 1); err == nil {
		t.Error("GetVersion with another key succeeded")
	}
}

func TestLocalMovedCiphertext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, pool, _ := newLocal(t)
	for _, v := range []string{"acme-v1", "acme-v2"} {
		if _, err := l.Put(ctx, "swa/tenants/acme", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, sql, target string
		version           int
	}{
		{"to another name", `INSERT INTO secrets (name, version, nonce, ciphertext)
			SELECT 'swa/tenants/evil', 1, nonce, ciphertext FROM secrets WHERE name = 'swa/tenants/acme' AND version = 2`,
			"swa/tenants/evil", 1},
		{"to another version", `INSERT INTO secrets (name, version, nonce, ciphertext)
			SELECT name, 3, nonce, ciphertext FROM secrets WHERE name = 'swa/tenants/acme' AND version = 1`,
			"swa/tenants/acme", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := pool.Exec(ctx, tc.sql); err != nil {
				t.Fatal(err)
			}
			if got, err := l.GetVersion(ctx, tc.target, tc.version); err == nil {
				t.Errorf("moved ciphertext opened as %q", got)
			}
			if got, err := l.Get(ctx, tc.target); err == nil {
				t.Errorf("Get of the moved ciphertext opened as %q", got)
			}
		})
	}
	if got, err := l.GetVersion(ctx, "swa/tenants/acme", 2); err != nil || string(got) != "acme-v2" {
		t.Errorf("original row = %q, %v", got, err)
	}
}

func TestLocalNoPlaintextAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, pool, _ := newLocal(t)
	value := []byte(`{"db_password":"plaintext-marker-5be0a1"}`)
	if _, err := l.Put(ctx, "swa/tenants/acme", value); err != nil {
		t.Fatal(err)
	}
	var rows, hits int
	err := pool.QueryRow(ctx, `SELECT count(*),
			count(*) FILTER (WHERE position($1::bytea IN ciphertext) > 0 OR position($1::bytea IN nonce) > 0
				OR position($2::bytea IN ciphertext) > 0)
		FROM secrets`, []byte("plaintext-marker-5be0a1"), []byte("db_password")).Scan(&rows, &hits)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 1 || hits != 0 {
		t.Errorf("rows = %d, rows holding plaintext = %d; want 1, 0", rows, hits)
	}
	var nonceLen, ctLen int
	if err := pool.QueryRow(ctx, `SELECT length(nonce), length(ciphertext) FROM secrets`).Scan(&nonceLen, &ctLen); err != nil {
		t.Fatal(err)
	}
	if nonceLen != 12 || ctLen != len(value)+16 {
		t.Errorf("nonce %d bytes, ciphertext %d bytes; want 12 and %d", nonceLen, ctLen, len(value)+16)
	}
}

func TestLocalNoncesDiffer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, pool, _ := newLocal(t)
	for range 3 {
		if _, err := l.Put(ctx, "swa/tenants/same", []byte("same value")); err != nil {
			t.Fatal(err)
		}
	}
	var nonces, cts int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT nonce), count(DISTINCT ciphertext) FROM secrets`).Scan(&nonces, &cts); err != nil {
		t.Fatal(err)
	}
	if nonces != 3 || cts != 3 {
		t.Errorf("distinct nonces %d, ciphertexts %d; want 3, 3", nonces, cts)
	}
}

func TestLocalErrorsNeverHoldValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, pool, _ := newLocal(t)
	value := []byte("never-in-errors-ab12")
	if _, err := l.Put(ctx, "swa/tenants/acme", value); err != nil {
		t.Fatal(err)
	}
	other, err := secrets.NewLocal(pool, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	_, errWrongKey := other.Get(ctx, "swa/tenants/acme")
	pool.Close()
	_, errPut := l.Put(ctx, "swa/tenants/acme", value)
	_, errGet := l.Get(ctx, "swa/tenants/acme")
	_, errVersions := l.Versions(ctx, "swa/tenants/acme")
	errDelete := l.Delete(ctx, "swa/tenants/acme")
	for _, tc := range []struct {
		op  string
		err error
	}{
		{"get secret", errWrongKey}, {"put secret", errPut}, {"get secret", errGet},
		{"list versions of secret", errVersions}, {"delete secret", errDelete},
	} {
		t.Run(tc.op, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(tc.err.Error(), tc.op+" swa/tenants/acme") {
				t.Errorf("error %q does not name %q and the secret", tc.err, tc.op)
			}
			noValue(t, tc.err, value)
		})
	}
}

func TestNewLocalKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := secrets.NewLocal(&pgxpool.Pool{}, make([]byte, n)); err == nil {
			t.Errorf("NewLocal accepted a %d-byte key", n)
		}
	}
}

func TestParseMasterKey(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xfb, 0xff, 0x3e}, 11)[:32] // exercises + / and - _
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"std padded", base64.StdEncoding.EncodeToString(key), true},
		{"std raw", base64.RawStdEncoding.EncodeToString(key), true},
		{"url padded", base64.URLEncoding.EncodeToString(key), true},
		{"url raw", base64.RawURLEncoding.EncodeToString(key), true},
		{"surrounding newline", base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"empty", "", false},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(key, 1)), false},
		{"not base64", "correct horse battery staple, not base64 at all!", false},
		{"hex", strings.Repeat("ab", 32), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := secrets.ParseMasterKey(tc.in)
			if tc.ok {
				if err != nil || !bytes.Equal(got, key) {
					t.Errorf("ParseMasterKey = %x, %v; want %x", got, err, key)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseMasterKey accepted %q", tc.in)
			}
			if tc.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
				t.Errorf("error %q echoes the input", err)
			}
		})
	}
}

func TestGenerateMasterKey(t *testing.T) {
	t.Parallel()
	a, b := secrets.GenerateMasterKey(), secrets.GenerateMasterKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	for _, s := range []string{a, b} {
		k, err := secrets.ParseMasterKey(s)
		if err != nil || len(k) != 32 {
			t.Errorf("generated key does not parse to 32 bytes: %d, %v", len(k), err)
		}
	}
}
