package mail

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Outbox retention. A row stays once its mail is sent or failed: campaign
// counts, the plan's monthly quota and dedupe keys read it. Its bodies and
// headers are of no use after that and are the bulk of the table, with the
// recipients' personal data and one-time links in them; after the
// retention the worker blanks them and stamps compacted_at.
const (
	// DefaultRetention is how long a finished mail keeps its bodies.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultCompactEvery is how often the worker compacts a tenant's
	// outbox at most.
	DefaultCompactEvery = time.Hour
	// compactBatch is how many rows one statement compacts.
	compactBatch = 500
)

// compactSQL blanks a batch of finished rows created more than $1 seconds
// ago. Finished rows are never written by the worker again; SKIP LOCKED
// leaves a row another compaction holds to it.
const compactSQL = `
UPDATE email_outbox o SET body_text = '', body_html = NULL, headers = '{}', compacted_at = now()
FROM (
    SELECT id FROM email_outbox
    WHERE status <> 'queued' AND compacted_at IS NULL AND created_at < now() - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) old
WHERE o.id = old.id`

// Execer runs a statement; *pgxpool.Conn, *pgxpool.Pool and pgx.Tx are ones.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// CompactOutbox blanks the bodies of at most limit mails sent or failed
// that were queued more than olderThan ago, a few hundred per statement,
// and returns how many it compacted. Queued mail is never touched; running
// it again compacts nothing more.
func CompactOutbox(ctx context.Context, db Execer, olderThan time.Duration, limit int) (int64, error) {
	if olderThan <= 0 || limit <= 0 {
		return 0, fmt.Errorf("compact outbox: retention %s and limit %d must be positive", olderThan, limit)
	}
	var total int64
	for total < int64(limit) {
		n := min(compactBatch, limit-int(total))
		tag, err := db.Exec(ctx, compactSQL, olderThan.Seconds(), n)
		if err != nil {
			return total, fmt.Errorf("compact outbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(n) {
			break
		}
	}
	return total, nil
}
