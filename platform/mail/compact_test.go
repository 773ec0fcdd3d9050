package mail_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/mail"
)

// outboxState is each row's subject, status and whether its bodies are
// still there, in id order.
func (s *stack) outboxState(t *testing.T) []string {
	t.Helper()
	rs, err := s.pool.Query(context.Background(), `SELECT subject || ' ' || status || ' ' ||
CASE WHEN body_text <> '' AND body_html IS NOT NULL AND headers <> '{}' AND compacted_at IS NULL THEN 'whole'
     WHEN body_text = '' AND body_html IS NULL AND headers = '{}' AND compacted_at IS NOT NULL THEN 'compacted'
     ELSE 'mixed' END FROM email_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompactOutbox: a visit blanks the bodies of mail sent or failed past
// the retention and keeps the rows; queued mail, however old, and recent
// mail keep theirs. Compaction runs at most every CompactEvery per tenant.
func TestCompactOutbox(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := context.Background()
	for _, subject := range []string{"old-sent", "old-failed", "old-queued", "new-sent", "later-sent"} {
		m := valid()
		m.Subject, m.HTML = subject, "<p>Hello</p>"
		m.Headers = map[string]string{"List-Unsubscribe": "<https://shop.example/u?token=t>"}
		s.enqueue(t, m, true)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	// What the worker leaves: sent, failed, and a row still queued whose
	// next attempt is a day away; all but the new ones queued 40 days ago.
	exec(`UPDATE email_outbox SET status = 'sent', sent_at = now() WHERE subject LIKE '%-sent'`)
	exec(`UPDATE email_outbox SET status = 'failed', last_error = 'refused' WHERE subject = 'old-failed'`)
	exec(`UPDATE email_outbox SET next_attempt_at = now() + interval '1 day' WHERE subject = 'old-queued'`)
	exec(`UPDATE email_outbox SET created_at = now() - interval '40 days' WHERE subject LIKE 'old-%'`)

	const every = 300 * time.Millisecond
	w := s.worker(t, mail.Options{Retention: 30 * 24 * time.Hour, CompactEvery: every})
	start := time.Now()
	if _, err := w.RunTenant(ctx, s.tenant); err != nil {
		t.Fatal(err)
	}
	want := []string{"old-sent sent compacted", "old-failed failed compacted", "old-queued queued whole", "new-sent sent whole", "later-sent sent whole"}
	check := func(when string) {
		t.Helper()
		got := s.outboxState(t)
		if len(got) != len(want) {
			t.Fatalf("%s: rows %q, want %q", when, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: rows %q, want %q", when, got, want)
			}
		}
	}
	check("after the first visit")

	// A row that passes the retention now waits for the next compaction.
	exec(`UPDATE email_outbox SET created_at = now() - interval '40 days' WHERE subject = 'later-sent'`)
	if _, err := w.RunTenant(ctx, s.tenant); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < every {
		check("a visit within CompactEvery")
	}
	time.Sleep(time.Until(start.Add(every + 50*time.Millisecond)))
	if _, err := w.RunTenant(ctx, s.tenant); err != nil {
		t.Fatal(err)
	}
	want[4] = "later-sent sent compacted"
	check("a visit after CompactEvery")

	if n, err := mail.CompactOutbox(ctx, s.pool, 30*24*time.Hour, 100); err != nil || n != 0 {
		t.Fatalf("compacting again = %d, %v; want nothing", n, err)
	}
	if _, err := mail.CompactOutbox(ctx, s.pool, 0, 100); err == nil {
		t.Fatal("a retention of 0 was accepted")
	}
}

// TestCompactOutboxInBatches: a backlog larger than a statement's batch is
// compacted up to the limit, no further.
func TestCompactOutboxInBatches(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `INSERT INTO email_outbox (to_addresses, from_address, subject, body_text, body_html, kind, status, sent_at, created_at)
SELECT '["a@example.com"]', 'x@example.com', 's' || i, 'text', '<p>h</p>', 'welcome', 'sent', now(), now() - interval '40 days'
FROM generate_series(1, 1200) i`); err != nil {
		t.Fatal(err)
	}
	n, err := mail.CompactOutbox(ctx, s.pool, 30*24*time.Hour, 1100)
	if err != nil || n != 1100 {
		t.Fatalf("CompactOutbox = %d, %v; want 1100", n, err)
	}
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM email_outbox WHERE compacted_at IS NULL`).Scan(&left); err != nil || left != 100 {
		t.Fatalf("%d rows left whole (%v), want 100", left, err)
	}
}
