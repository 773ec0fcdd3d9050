// Package mail sends a tenant's e-mail through a transactional outbox.
//
// The code that changes state writes the mail into the tenant's email_outbox
// table with Enqueue, in the same transaction as the change; a mail is
// therefore queued exactly when the change commits. A Worker sends queued
// mail over SMTP (the tenant's own relay or the platform default), retries
// temporary failures with exponential backoff, and records the final failure
// on the row. Sending never runs inside a request, so an unreachable relay
// never turns a committed change into an error response.
package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Message is one e-mail as queued in the outbox.
type Message struct {
	// Kind says what the mail is (welcome, password_reset, ...); it is kept
	// on the row for staff and metrics.
	Kind string
	// From is "Name <addr>" or "addr".
	From string
	To   []string
	Bcc  []string
	// Subject is one line.
	Subject string
	// Text is the plain-text body (always present); HTML, when set, is sent
	// as the alternative part of a multipart/alternative message.
	Text string
	HTML string
	// Headers are extra header fields (Reply-To, List-Unsubscribe, ...).
	Headers map[string]string
	// DedupeKey, when set, makes Enqueue a no-op for a key already queued,
	// so a retried transaction cannot queue the same mail twice.
	DedupeKey string
}

// ErrInvalid marks a message that cannot be queued (no recipient, a header
// with a line break, ...): a programming error, never a delivery problem.
var ErrInvalid = errors.New("invalid message")

// Validate reports what makes m unsendable, wrapping ErrInvalid.
func (m Message) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(m.Kind) == "" {
		return bad("kind is empty")
	}
	if len(m.To) == 0 {
		return bad("no recipient")
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		return bad("from address %q", m.From)
	}
	for _, list := range [][]string{m.To, m.Bcc} {
		for _, a := range list {
			if _, err := mail.ParseAddress(a); err != nil {
				return bad("address %q", a)
			}
		}
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return bad("subject has a line break")
	}
	if m.Text == "" {
		return bad("text body is empty")
	}
	for k, v := range m.Headers {
		if !validHeaderName(k) {
			return bad("header name %q", k)
		}
		if reserved[strings.ToLower(k)] {
			return bad("header %q is set from the message fields", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return bad("header %s has a line break", k)
		}
	}
	return nil
}

// reserved headers are built from Message fields, never taken from Headers.
var reserved = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "date": true,
	"message-id": true, "mime-version": true, "content-type": true, "content-transfer-encoding": true,
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 127 || c == ':' {
			return false
		}
	}
	return true
}

const enqueueSQL = `
INSERT INTO email_outbox (to_addresses, bcc_addresses, from_address, subject, body_text, body_html, headers, kind, dedupe_key)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, NULLIF($9, ''))
ON CONFLICT (dedupe_key) DO NOTHING`

// Enqueue writes m into the tenant's outbox inside the caller's transaction:
// it is sent only if that transaction commits. A message whose DedupeKey is
// already in the outbox is skipped without error.
func Enqueue(ctx context.Context, tx pgx.Tx, m Message) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("enqueue %s: %w", m.Kind, err)
	}
	to, _ := json.Marshal(m.To)
	bcc := []byte("[]")
	if len(m.Bcc) > 0 {
		bcc, _ = json.Marshal(m.Bcc)
	}
	headers := []byte("{}")
	if len(m.Headers) > 0 {
		headers, _ = json.Marshal(m.Headers)
	}
	if _, err := tx.Exec(ctx, enqueueSQL, to, bcc, m.From, m.Subject, m.Text, m.HTML, headers, m.Kind, m.DedupeKey); err != nil {
		return fmt.Errorf("enqueue %s: %w", m.Kind, err)
	}
	return nil
}
