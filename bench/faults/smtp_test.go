package faults

import (
	"context"
	"encoding/json"
	"fmt"
	netmail "net/mail"
	"net/url"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// outboxRow is one email_outbox row as the SMTP test reads it.
type outboxRow struct {
	id       int64
	to       []string
	subject  string
	status   string
	attempts int
	lastErr  *string
}

func outbox(t *testing.T, p *plane, slug string) []outboxRow {
	t.Helper()
	rows, err := p.tenantDB(t, slug).Query(context.Background(),
		`SELECT id, to_addresses, subject, status, attempts, last_error FROM email_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var to []byte
		if err := rows.Scan(&r.id, &to, &r.subject, &r.status, &r.attempts, &r.lastErr); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(to, &r.to); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSMTPDown cuts the tenant's relay (a proxy in front of Mailpit's
// SMTP, named in the tenant's secrets bundle) while members sign up and
// ask for password resets, with the mail worker running as `swa serve`
// runs it (here every 100 ms, retrying after 100-400 ms). Every HTTP
// answer is the same as with the relay up; the mails stay queued in the
// tenant's outbox, their failed attempts recorded, none marked sent and
// none failed while attempts remain. When the relay is back the worker
// delivers each mail exactly once, as Mailpit counts them by recipient and
// subject.
func TestSMTPDown(t *testing.T) {
	t.Parallel()
	p := newPlane(t, planeOptions{
		Tenants: []string{"mailer"}, Accounts: true, Mail: true,
		MailWorker: mail.Options{
			Sender: mail.SMTP{Timeout: 2 * time.Second}, Interval: 100 * time.Millisecond,
			BaseBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, MaxAttempts: 1000,
		},
	})
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	ctx, cancel := context.WithCancel(context.Background())
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		_ = p.mail.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-workerDone })

	p.smtpProxy.Stop()
	down := time.Now()
	tag := pgtest.RandomName("smtp")
	const members = 4 // under create_account's 5 an hour from one address
	const pw = "Quiet!Harbour#Lamp42"
	var addrs []string
	for i := range members {
		v := &visitor{p: p, slug: "mailer", cookies: map[string]string{}}
		v.do(t, "GET", "/user/token", nil)
		user, addr := fmt.Sprintf("%s%d", tag, i), fmt.Sprintf("%s-%d@example.com", tag, i)
		addrs = append(addrs, addr)
		start := time.Now()
		st, body := v.do(t, "POST", "/user/create-account", url.Values{
			"firstname": {"Mail"}, "lastname": {"Fault"}, "username": {user},
			"email_address": {addr}, "password": {pw}, "confirm_password": {pw},
			"newsletter": {"false"}, "remember_me": {"false"},
		})
		t.Logf("create-account %d with the relay down: %d in %v", i, st, time.Since(start).Round(time.Millisecond))
		if st != 200 || body["create_account"] != "true" {
			t.Fatalf("create-account with the relay down: %d %v", st, body)
		}
		anon := &visitor{p: p, slug: "mailer", cookies: map[string]string{}}
		anon.do(t, "GET", "/user/token", nil)
		st, body = anon.do(t, "POST", "/user/reset-password", url.Values{"username": {user}, "email_address": {addr}})
		if st != 200 || body["reset_password"] != "success" {
			t.Fatalf("reset-password with the relay down: %d %v", st, body)
		}
	}
	const want = 2 * members // a welcome and a reset mail each

	// The worker keeps trying: wait until every row has failed at least
	// twice, so each was retried after its backoff.
	var rows []outboxRow
	for {
		rows = outbox(t, p, "mailer")
		retried := 0
		for _, r := range rows {
			if r.attempts >= 2 {
				retried++
			}
		}
		if len(rows) == want && retried == want {
			break
		}
		if time.Since(down) > 10*time.Second {
			t.Fatalf("outbox with the relay down: %d rows, %d retried, want %d retried", len(rows), retried, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	attempts := 0
	for _, r := range rows {
		attempts += r.attempts
		if r.status != "queued" || r.lastErr == nil || *r.lastErr == "" {
			t.Errorf("outbox row %d with the relay down: status %s, last error %v", r.id, r.status, r.lastErr)
		}
	}
	t.Logf("relay down %v: %d mails queued, %d delivery attempts recorded, none sent or failed",
		time.Since(down).Round(time.Millisecond), len(rows), attempts)
	if n := mp.Count(t, `to:"`+tag+`"`); n != 0 {
		t.Fatalf("%d mails reached Mailpit through a stopped relay", n)
	}

	if err := p.smtpProxy.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for {
		rows = outbox(t, p, "mailer")
		sent := 0
		for _, r := range rows {
			if r.status == "sent" {
				sent++
			}
		}
		if sent == want {
			break
		}
		if time.Since(back) > 10*time.Second {
			t.Fatalf("%d of %d mails sent 10s after the relay came back", sent, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	drained := time.Since(back)
	mp.Wait(t, `to:"`+tag+`"`, want, 10*time.Second)
	// A second delivery would come from a later pass: give the worker a
	// few more before counting.
	time.Sleep(500 * time.Millisecond)
	for _, r := range rows {
		to, err := netmail.ParseAddress(r.to[0])
		if err != nil {
			t.Fatal(err)
		}
		if n := mp.Count(t, `to:"`+to.Address+`" subject:"`+r.subject+`"`); n != 1 {
			t.Errorf("outbox row %d (%s to %s) reached Mailpit %d times", r.id, r.subject, to.Address, n)
		}
	}
	if n := mp.Count(t, `to:"`+tag+`"`); n != want {
		t.Errorf("%d mails in Mailpit for %d outbox rows", n, want)
	}
	for _, a := range addrs {
		if n := mp.Count(t, `to:"`+a+`"`); n != 2 {
			t.Errorf("%s received %d mails, want 2", a, n)
		}
	}
	t.Logf("relay back: all %d mails sent %v later, each once in Mailpit", want, drained.Round(time.Millisecond))
}
