package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Options choose and configure the secrets backend (see platform/config:
// SWA_SECRETS_BACKEND, SWA_MASTER_KEY, SWA_AWS_*, SWA_SECRETS_CACHE_TTL).
type Options struct {
	// Backend is "local" or "aws".
	Backend string
	// MasterKey (local) is base64 of 32 bytes, see ParseMasterKey.
	MasterKey string
	// Pool (local) is the platform database.
	Pool *pgxpool.Pool
	// AWSRegion overrides the region of the standard AWS configuration chain.
	AWSRegion string
	// AWSEndpoint overrides the Secrets Manager endpoint (emulators only).
	AWSEndpoint string
	// AWSPrefix is the SecretId prefix, see AWS.
	AWSPrefix string
	// CacheTTL is how long a read value is served from memory
	// (DefaultCacheTTL when not positive).
	CacheTTL time.Duration
	// Log receives the cache's warnings; nil discards them.
	Log *slog.Logger
}

// New opens the configured backend behind a Cache. The Store returned is a
// *Cache, for callers that need Invalidate.
func New(ctx context.Context, o Options) (Store, error) {
	var inner Store
	switch o.Backend {
	case "local":
		key, err := ParseMasterKey(o.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		if o.Pool == nil {
			return nil, errors.New("secrets: the local backend needs the platform database pool")
		}
		local, err := NewLocal(o.Pool, key)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		inner = local
	case "aws":
		client, err := NewAWSClient(ctx, o.AWSRegion, o.AWSEndpoint)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		inner = NewAWS(client, o.AWSPrefix)
	default:
		return nil, fmt.Errorf("secrets: unknown backend %q (want local or aws)", o.Backend)
	}
	return NewCache(inner, o.CacheTTL, o.Log), nil
}
