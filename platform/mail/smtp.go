package mail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPSettings says how to reach a relay.
type SMTPSettings struct {
	Host     string
	Port     int
	Username string
	Password string
}

// String keeps the password out of logs.
func (s SMTPSettings) String() string {
	return fmt.Sprintf("smtp://%s:%d (auth %t)", s.Host, s.Port, s.Username != "")
}

// Sender delivers one message through a relay.
type Sender interface {
	Send(ctx context.Context, relay SMTPSettings, m Message) error
}

// SMTP is the Sender that speaks SMTP. Port 465 uses implicit TLS; with
// credentials STARTTLS is required (no password in clear text); without
// them STARTTLS is used when the relay offers it (a local sink does not).
type SMTP struct {
	// Timeout bounds one delivery, dial included (default 30s).
	Timeout time.Duration
	// HELO is the name announced to the relay (default: the library's).
	HELO string
}

// PermanentError wraps a rejection that retrying cannot fix (an SMTP 5xx
// reply, a message the library refuses to build).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Send delivers m through relay. Errors are *PermanentError when retrying is
// pointless; anything else (refused connection, 4xx reply, timeout) is
// worth another try.
func (s SMTP) Send(ctx context.Context, relay SMTPSettings, m Message) error {
	msg, err := Build(m)
	if err != nil {
		return &PermanentError{Err: err}
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	opts := []gomail.Option{gomail.WithPort(relay.Port), gomail.WithTimeout(timeout)}
	switch {
	case relay.Port == 465:
		opts = append(opts, gomail.WithSSL())
	case relay.Username != "":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if relay.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(relay.Username), gomail.WithPassword(relay.Password))
	}
	if s.HELO != "" {
		opts = append(opts, gomail.WithHELO(s.HELO))
	}
	client, err := gomail.NewClient(relay.Host, opts...)
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("smtp client: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			return &PermanentError{Err: err}
		}
		return err
	}
	return nil
}

// Build turns m into a MIME message: text/plain alone, or
// multipart/alternative with the HTML part when m.HTML is set. Bcc
// recipients get the mail but no header naming them.
func Build(m Message) (*gomail.Msg, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	msg := gomail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return nil, fmt.Errorf("%w: from: %v", ErrInvalid, err)
	}
	if err := msg.To(m.To...); err != nil {
		return nil, fmt.Errorf("%w: to: %v", ErrInvalid, err)
	}
	if len(m.Bcc) > 0 {
		if err := msg.Bcc(m.Bcc...); err != nil {
			return nil, fmt.Errorf("%w: bcc: %v", ErrInvalid, err)
		}
	}
	msg.Subject(m.Subject)
	msg.SetMessageID()
	msg.SetDate()
	for k, v := range m.Headers {
		if strings.EqualFold(k, "Reply-To") {
			if err := msg.ReplyTo(v); err != nil {
				return nil, fmt.Errorf("%w: reply-to: %v", ErrInvalid, err)
			}
			continue
		}
		// Preformatted: the values (List-Unsubscribe's <...> lists) are
		// ASCII and already in header syntax; Validate refused line breaks.
		msg.SetGenHeaderPreformatted(gomail.Header(k), v)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}
