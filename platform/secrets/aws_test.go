package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/sivchari/kumo"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// kumoStart serialises kumo.NewServer: kumo's services are process-wide
// singletons that every server wires up again, so servers started at once
// race, and all servers of a test binary share one Secrets Manager state.
// Tests therefore use names of their own (see newKumo).
var kumoStart sync.Mutex

// newKumo starts an in-process Secrets Manager emulator and returns a real
// SDK client on it (static credentials, us-east-1, no retries so a stopped
// server fails fast), and a name prefix no other test uses.
func newKumo(t testing.TB) (*kumo.Server, *secretsmanager.Client, string) {
	t.Helper()
	kumoStart.Lock()
	srv := kumo.NewServer()
	kumoStart.Unlock()
	t.Cleanup(srv.Close)
	client, err := secrets.NewAWSClient(context.Background(), "us-east-1", srv.URL,
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	return srv, client, pgtest.RandomName("test-") + "/"
}

func TestAWSStore(t *testing.T) {
	t.Parallel()
	_, client, prefix := newKumo(t)
	testStore(t, secrets.NewAWS(client, prefix), func() string { return pgtest.RandomName("") })
}

func TestAWSSecretID(t *testing.T) {
	t.Parallel()
	tests := []struct{ prefix, name, want string }{
		{"swa/tenants/", "acme", "swa/tenants/acme"},
		{"swa/tenants/", secrets.TenantSecretName("acme"), "swa/tenants/acme"},
		{"prod/", secrets.TenantSecretName("acme"), "prod/swa/tenants/acme"},
		{"", "swa/tenants/acme", "swa/tenants/acme"},
		{"swa/tenants/", "dbservers/main", "swa/tenants/dbservers/main"},
	}
	for _, tc := range tests {
		t.Run(tc.prefix+"|"+tc.name, func(t *testing.T) {
			t.Parallel()
			if got := secrets.NewAWS(nil, tc.prefix).SecretID(tc.name); got != tc.want {
				t.Errorf("SecretID = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAWSLayout checks what lands in Secrets Manager: the prefixed SecretId,
// numbered VersionIds, SecretString for text and SecretBinary for bytes.
func TestAWSLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, client, prefix := newKumo(t)
	s := secrets.NewAWS(client, prefix)
	if _, err := s.Put(ctx, "swa/tenants/acme", []byte(`{"k":"v"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "swa/tenants/acme", []byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		versionID  string
		wantString *string
		wantBinary []byte
	}{
		{"swa-version-00000000000000000001", aws.String(`{"k":"v"}`), nil},
		{"swa-version-00000000000000000002", nil, []byte{0xff, 0x00}},
	}
	for _, tc := range tests {
		t.Run(tc.versionID, func(t *testing.T) {
			out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
				SecretId: aws.String(prefix + "swa/tenants/acme"), VersionId: aws.String(tc.versionID),
			})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.SecretString) != aws.ToString(tc.wantString) || !bytes.Equal(out.SecretBinary, tc.wantBinary) {
				t.Errorf("stored string %q binary %x; want %q %x",
					aws.ToString(out.SecretString), out.SecretBinary, aws.ToString(tc.wantString), tc.wantBinary)
			}
		})
	}
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(prefix + "swa/tenants/acme")})
	if err != nil || aws.ToString(out.VersionId) != "swa-version-00000000000000000002" {
		t.Errorf("AWSCURRENT = %v, %v; want version 2", aws.ToString(out.VersionId), err)
	}
}

// TestAWSForeignVersion: a version written by another tool (random VersionId)
// becomes current but is not numbered; the next Put continues the numbering.
func TestAWSForeignVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, client, prefix := newKumo(t)
	s := secrets.NewAWS(client, prefix)
	if _, err := s.Put(ctx, "acme", []byte("ours-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(prefix + "acme"), SecretString: aws.String("rotated by hand"),
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "acme"); err != nil || string(got) != "rotated by hand" {
		t.Errorf("Get = %q, %v; want the AWSCURRENT value", got, err)
	}
	if vs, err := s.Versions(ctx, "acme"); err != nil || !slices.Equal(vs, []int{1}) {
		t.Errorf("Versions = %v, %v; want [1]", vs, err)
	}
	if v, err := s.Put(ctx, "acme", []byte("ours-2")); err != nil || v != 2 {
		t.Errorf("Put = %d, %v; want 2", v, err)
	}
	if got, err := s.Get(ctx, "acme"); err != nil || string(got) != "ours-2" {
		t.Errorf("Get = %q, %v", got, err)
	}
}

// TestAWSEmptySecret: a secret created without a value (as a Put that died
// between CreateSecret and PutSecretValue leaves it) reads as not found and
// the next Put writes version 1.
func TestAWSEmptySecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, client, prefix := newKumo(t)
	if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(prefix + "half")}); err != nil {
		t.Fatal(err)
	}
	s := secrets.NewAWS(client, prefix)
	if _, err := s.Get(ctx, "half"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Get: err = %v, want ErrNotFound", err)
	}
	if v, err := s.Put(ctx, "half", []byte("now set")); err != nil || v != 1 {
		t.Errorf("Put = %d, %v; want 1", v, err)
	}
}

func TestAWSServerDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, client, prefix := newKumo(t)
	s := secrets.NewAWS(client, prefix)
	value := []byte("aws-down-value-93e1")
	if _, err := s.Put(ctx, "acme", value); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, errGet := s.Get(ctx, "acme")
	_, errPut := s.Put(ctx, "acme", value)
	_, errVersions := s.Versions(ctx, "acme")
	errDelete := s.Delete(ctx, "acme")
	for _, tc := range []struct {
		op  string
		err error
	}{
		{"get secret", errGet}, {"put secret", errPut}, {"list versions of secret", errVersions}, {"delete secret", errDelete},
	} {
		t.Run(tc.op, func(t *testing.T) {
			if tc.err == nil || errors.Is(tc.err, secrets.ErrNotFound) {
				t.Fatalf("err = %v, want a transport error", tc.err)
			}
			if !strings.Contains(tc.err.Error(), tc.op+" acme") {
				t.Errorf("error %q does not name %q and the secret", tc.err, tc.op)
			}
			noValue(t, tc.err, value)
		})
	}
}

func TestNewAWSClientEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, err := secrets.NewAWSClient(ctx, "eu-west-3", "http://127.0.0.1:1",
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("a", "b", "")))
	if err != nil {
		t.Fatal(err)
	}
	o := client.Options()
	if o.Region != "eu-west-3" || aws.ToString(o.BaseEndpoint) != "http://127.0.0.1:1" {
		t.Errorf("region %q endpoint %q", o.Region, aws.ToString(o.BaseEndpoint))
	}
	client, err = secrets.NewAWSClient(ctx, "us-east-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if client.Options().BaseEndpoint != nil {
		t.Errorf("endpoint set without an override: %q", aws.ToString(client.Options().BaseEndpoint))
	}
}
