package mail_test

import (
	"context"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/mail"
)

// shutdownDuringSend is the real SMTP sender, with shutdown (the worker's
// context ending) arriving while the relay holds the message: the relay
// accepts it and the worker learns of the shutdown only afterwards.
type shutdownDuringSend struct {
	cancel context.CancelFunc
}

func (s shutdownDuringSend) Send(ctx context.Context, relay mail.SMTPSettings, m mail.Message) error {
	err := mail.SMTP{}.Send(ctx, relay, m)
	s.cancel()
	return err
}

// TestShutdownDuringSendRecordsTheDelivery: a message the relay accepted is
// recorded as sent even though the worker's context ended meanwhile, so it
// is not sent a second time once its lease runs out.
func TestShutdownDuringSendRecordsTheDelivery(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	subject, rcpt := unique(t)
	m := valid()
	m.To, m.Subject = []string{rcpt}, subject
	s.enqueue(t, m, true)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := s.worker(t, mail.Options{Sender: shutdownDuringSend{cancel: cancel}, Lease: time.Second})
	if _, err := w.RunTenant(ctx, s.tenant); err != nil {
		t.Fatalf("RunTenant: %v", err)
	}
	if ctx.Err() == nil {
		t.Fatal("the sender never ran")
	}
	rows := s.rows(t)
	if len(rows) != 1 || rows[0].status != "sent" || rows[0].sentAt == nil {
		t.Fatalf("outbox = %+v, want the delivered row recorded as sent", rows)
	}
	// Past the lease another pass finds nothing to send again.
	time.Sleep(1100 * time.Millisecond)
	res, err := s.worker(t, mail.Options{}).RunTenant(context.Background(), s.tenant)
	if err != nil || res != (mail.Result{}) {
		t.Fatalf("pass after the lease = %+v, %v; want nothing", res, err)
	}
	if n := s.mp.Count(t, `to:"`+rcpt+`"`); n != 1 {
		t.Fatalf("%d messages delivered, want exactly 1", n)
	}
}
