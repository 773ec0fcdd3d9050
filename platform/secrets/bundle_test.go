package secrets_test

import (
	"slices"
	"testing"

	"github.com/startupwebapp/platform/platform/secrets"
)

// TestRotateSessionKey keeps the replaced keys newest first, at most
// KeptSessionKeys of them, and leaves the rest of the bundle alone.
func TestRotateSessionKey(t *testing.T) {
	t.Parallel()
	b := secrets.TenantBundle{SessionKey: "k0", DBPassword: "pw", StripeSecretKey: "sk"}
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		b = b.RotateSessionKey(k)
	}
	if b.SessionKey != "k5" || !slices.Equal(b.PreviousSessionKeys, []string{"k4", "k3", "k2"}) {
		t.Fatalf("after five rotations: key %q, previous %q", b.SessionKey, b.PreviousSessionKeys)
	}
	if b.DBPassword != "pw" || b.StripeSecretKey != "sk" {
		t.Fatal("rotating the session key changed other values")
	}
	if len(b.PreviousSessionKeys) != secrets.KeptSessionKeys {
		t.Fatalf("kept %d keys, want %d", len(b.PreviousSessionKeys), secrets.KeptSessionKeys)
	}
}
