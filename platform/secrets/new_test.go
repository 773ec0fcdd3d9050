package secrets_test

import (
	"context"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

func TestNewLocal(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, migrations.Platform)
	s, err := secrets.New(context.Background(), secrets.Options{
		Backend: "local", MasterKey: secrets.GenerateMasterKey(), Pool: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*secrets.Cache); !ok {
		t.Errorf("New returned %T, want *secrets.Cache", s)
	}
	mustPut(t, s, "swa/tenants/acme", "through New")
	mustGet(t, s, "swa/tenants/acme", "through New")
}

func TestNewOptionErrors(t *testing.T) {
	t.Parallel()
	const badKey = "not-a-key-but-a-secret-6d2f"
	tests := []struct {
		name string
		o    secrets.Options
		want string
	}{
		{"unknown backend", secrets.Options{Backend: "vault"}, "unknown backend"},
		{"no backend", secrets.Options{}, "unknown backend"},
		{"bad master key", secrets.Options{Backend: "local", MasterKey: badKey}, "master key"},
		{"no master key", secrets.Options{Backend: "local"}, "master key"},
		{"no pool", secrets.Options{Backend: "local", MasterKey: secrets.GenerateMasterKey()}, "pool"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := secrets.New(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), badKey) {
				t.Errorf("error %q echoes the master key", err)
			}
		})
	}
}

// TestNewAWS goes through the standard credential chain (environment), so it
// sets the environment and cannot run in parallel.
func TestNewAWS(t *testing.T) {
	srv, _, prefix := newKumo(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	s, err := secrets.New(context.Background(), secrets.Options{
		Backend: "aws", AWSRegion: "us-east-1", AWSEndpoint: srv.URL, AWSPrefix: prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "acme", "through New")
	mustGet(t, s, "acme", "through New")
	mustGet(t, s, prefix+"acme", "through New")
}
