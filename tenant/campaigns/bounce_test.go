package campaigns_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/campaigns"
)

// refusing stands in for a relay's answers to chosen recipients (Mailpit
// takes every message): a permanent refusal for one, a temporary one for
// another; everything else goes to Mailpit through the real SMTP sender.
type refusing struct {
	bounce, later string
}

func (r refusing) Send(ctx context.Context, relay mail.SMTPSettings, m mail.Message) error {
	to := strings.Join(m.To, ",")
	switch {
	case strings.Contains(to, r.bounce):
		return &mail.PermanentError{Err: errors.New("550 5.1.1 mailbox unavailable")}
	case strings.Contains(to, r.later):
		return errors.New("451 4.3.0 try again later")
	}
	return mail.SMTP{}.Send(ctx, relay, m)
}

// The send log tells a bounce (the relay refused for good) from a mail
// that failed through every attempt, and from a delivered one.
func TestSendLogCountsBouncesApart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, "prospect", 0, 3, false, false)
	id, _ := f.campaign(t, campaigns.Prospect)
	f.send(t, id)
	if _, err := f.worker(t, campaigns.Options{}).RunTenant(context.Background(), f.tenant); err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(pgtest.Require(t, "SWA_SMTP_PORT"))
	relay := mail.SMTPSettings{Host: pgtest.Require(t, "SWA_SMTP_HOST"), Port: port}
	w, err := mail.NewWorker(mail.Options{
		Tenants:     func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.tenant} },
		Conn:        f.do,
		Relay:       func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) { return relay, nil },
		Sender:      refusing{bounce: f.addr("prospect", 0), later: f.addr("prospect", 1)},
		MaxAttempts: 1, Concurrency: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.RunTenant(context.Background(), f.tenant)
	if err != nil || res.Sent != 1 || res.Failed != 2 {
		t.Fatalf("outbox pass = %+v, %v; want 1 sent and 2 failed", res, err)
	}
	c, err := campaigns.Get(context.Background(), f.db, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivered != 1 || c.Bounced != 1 || c.Failed != 1 {
		t.Fatalf("send log: delivered %d, bounced %d, failed %d; want 1 each", c.Delivered, c.Bounced, c.Failed)
	}
}
