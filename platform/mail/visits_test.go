package mail_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/mail"
)

// failOnce refuses its first message for a while, then delivers.
type failOnce struct {
	next   mail.Sender
	failed atomic.Bool
}

func (f *failOnce) Send(ctx context.Context, relay mail.SMTPSettings, m mail.Message) error {
	if f.failed.CompareAndSwap(false, true) {
		return errors.New("relay busy")
	}
	return f.next.Send(ctx, relay, m)
}

// With Visits, a pass leaves alone a tenant that is neither active nor due,
// visits it once it is active, and comes back for a retry when the retry is
// due even though the tenant went quiet.
func TestVisitsFollowActivityAndRetries(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	var active atomic.Bool
	var visits atomic.Int32
	w := s.worker(t, mail.Options{
		Visits:      directory.NewVisits(func(int64) bool { return active.Load() }, time.Hour),
		Sender:      &failOnce{next: mail.SMTP{}},
		BaseBackoff: time.Second, MaxBackoff: time.Second,
		Relay: func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) {
			visits.Add(1)
			return s.relay, nil
		},
	})
	_, rcpt := unique(t)
	m := valid()
	m.To = []string{rcpt}
	s.enqueue(t, m, true)
	ctx := context.Background()

	// Its first sweep falls somewhere in the next hour, not now.
	w.RunOnce(ctx)
	if n := visits.Load(); n != 0 {
		t.Fatalf("%d visits to a tenant neither active nor due", n)
	}
	active.Store(true)
	w.RunOnce(ctx)
	if n := visits.Load(); n != 1 {
		t.Fatalf("%d visits to an active tenant, want 1", n)
	}
	rows := s.rows(t)
	if len(rows) != 1 || rows[0].status != "queued" || rows[0].attempts != 1 {
		t.Fatalf("outbox after the refused attempt = %+v", rows)
	}
	active.Store(false)
	w.RunOnce(ctx)
	if n := visits.Load(); n != 1 {
		t.Fatalf("visited a quiet tenant before its retry was due (%d visits)", n)
	}
	time.Sleep(time.Until(rows[0].next) + 50*time.Millisecond)
	w.RunOnce(ctx)
	if n := visits.Load(); n != 2 {
		t.Fatalf("%d visits once the retry was due, want 2", n)
	}
	if rows := s.rows(t); len(rows) != 1 || rows[0].status != "sent" {
		t.Fatalf("outbox after the retry = %+v, want it sent", rows)
	}
	s.mp.Wait(t, `to:"`+rcpt+`"`, 1, 5*time.Second)
}
