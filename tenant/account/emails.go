package account

import (
	"bytes"
	"context"
	htmltemplate "html/template"
	"net/mail"
	"net/url"
	"strings"
	texttemplate "text/template"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/directory"
	outbox "github.com/startupwebapp/platform/platform/mail"
)

// The mails of the API's §8.1 (docs/api.md). Texts are ours; subjects, recipients and
// links are the contract's. Each is rendered per tenant: its frontend
// origin (links and subjects), its display name (signature) and its From.
const (
	kindWelcome          = "welcome"
	kindVerification     = "email_verification"
	kindPasswordReset    = "password_reset"
	kindPasswordChanged  = "password_changed"
	kindForgotUsername   = "forgot_username"
	kindEmailChanged     = "email_changed"
	kindPasswordUpdated  = "password_updated"
	kindChatNotification = "chat_message"
)

// emailData fills the templates.
type emailData struct {
	Origin    string // the tenant's frontend origin (ENV)
	Site      string // the tenant's display name
	Contact   string // the address to forward unexpected mail to
	FirstName string
	LastName  string
	Username  string
	Link      string
	OldEmail  string
	NewEmail  string
	When      string
}

type emailTemplate struct {
	subject string
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// Shared pieces: greeting, the "did not request this" note and signature.
const (
	textGreeting = `Hi {{.FirstName}} {{.LastName}},` + "\n\n"
	textFooter   = "\n\nIf you did not request this, please forward this email to {{.Contact}} and let us know." +
		"\n\nQuestions? Call us toll-free at 1-800-123-4567.\n\nThank you,\n{{.Site}}\n"
	htmlGreeting = `<p>Hi {{.FirstName}} {{.LastName}},</p>`
	htmlFooter   = `<p>If you did not request this, please forward this email to <a href="mailto:{{.Contact}}">{{.Contact}}</a> and let us know.</p>` +
		`<p>Questions? Call us toll-free at 1-800-123-4567.</p><p>Thank you,<br>{{.Site}}</p>`
)

var templates = map[string]emailTemplate{
	kindWelcome: newTemplate("Welcome to {{.Origin}}",
		"Welcome to {{.Site}}! Your username is {{.Username}}.\n\nPlease verify your email address by following this link (it is valid for 24 hours):\n{{.Link}}",
		`<p>Welcome to {{.Site}}! Your username is <b>{{.Username}}</b>.</p><p>Please <a href="{{.Link}}">verify your email address</a> (the link is valid for 24 hours):<br>{{.Link}}</p>`),
	kindVerification: newTemplate("Email Verification Request for {{.Origin}}",
		"We received a request to verify this email address for the username {{.Username}} at {{.Origin}}. "+
			"If you made it, please confirm that you may use this address by following this link (it is valid for 24 hours from this request):\n{{.Link}}"+
			"\n\nDo not follow the link if the request was not yours.",
		`<p>We received a request to verify this email address for the username <b>{{.Username}}</b> at {{.Origin}}. `+
			`If you made it, please <a href="{{.Link}}">confirm that you may use this address</a> (the link is valid for 24 hours from this request):<br>{{.Link}}</p>`+
			`<p>Do not follow the link if the request was not yours.</p>`),
	kindPasswordReset: newTemplate("Password Reset Request for {{.Origin}}",
		"We received a request to reset the password of your account {{.Username}}. Choose a new password by following this link (it expires in 1 hour):\n{{.Link}}",
		`<p>We received a request to reset the password of your account <b>{{.Username}}</b>. <a href="{{.Link}}">Choose a new password</a> (the link expires in 1 hour):<br>{{.Link}}</p>`),
	kindPasswordChanged: newTemplate("Password Changed on {{.Origin}}",
		"The password of your account {{.Username}} was changed. You can log in here:\n{{.Link}}",
		`<p>The password of your account <b>{{.Username}}</b> was changed. You can <a href="{{.Link}}">log in here</a>.</p>`),
	kindForgotUsername: newTemplate("Forgot Username Request for {{.Origin}}",
		"We received a request for the username of the account with this email address. Your username is {{.Username}}.\n\nYou can log in here:\n{{.Link}}",
		`<p>We received a request for the username of the account with this email address. Your username is <b>{{.Username}}</b>.</p><p>You can <a href="{{.Link}}">log in here</a>.</p>`),
	kindEmailChanged: newTemplate("Email Address Changed on {{.Origin}}",
		"The email address of your account {{.Username}} was changed from {{.OldEmail}} to {{.NewEmail}}.\n\nPlease verify the new address by following this link (it is valid for 24 hours):\n{{.Link}}",
		`<p>The email address of your account <b>{{.Username}}</b> was changed from {{.OldEmail}} to {{.NewEmail}}.</p><p>Please <a href="{{.Link}}">verify the new address</a> (the link is valid for 24 hours):<br>{{.Link}}</p>`),
	kindPasswordUpdated: newTemplate("Password Changed on {{.Origin}}",
		"The password of your account {{.Username}} was changed from your account page.",
		`<p>The password of your account <b>{{.Username}}</b> was changed from your account page.</p>`),
}

// chatTemplate is the short notice to the site owner (E8): when a chat
// message arrived, never its text.
var chatTemplate = emailTemplate{
	subject: "New Chat Message @ {{.Origin}}",
	text:    texttemplate.Must(texttemplate.New("t").Parse("A new chat message arrived at {{.When}}.\n")),
	html:    htmltemplate.Must(htmltemplate.New("h").Parse("<p>A new chat message arrived at {{.When}}.</p>")),
}

func newTemplate(subject, text, html string) emailTemplate {
	return emailTemplate{
		subject: subject,
		text:    texttemplate.Must(texttemplate.New("t").Parse(textGreeting + text + textFooter)),
		html:    htmltemplate.Must(htmltemplate.New("h").Parse(htmlGreeting + html + htmlFooter)),
	}
}

// crlf gives the text body the CRLF line breaks of §8.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func render(tpl emailTemplate, d emailData) (subject, text, html string, err error) {
	var sb, tb, hb bytes.Buffer
	st := texttemplate.Must(texttemplate.New("s").Parse(tpl.subject))
	if err = st.Execute(&sb, d); err != nil {
		return
	}
	if err = tpl.text.Execute(&tb, d); err != nil {
		return
	}
	if err = tpl.html.Execute(&hb, d); err != nil {
		return
	}
	return sb.String(), crlf(tb.String()), hb.String(), nil
}

// origin is the tenant's frontend origin, for links and subjects.
func origin(t *directory.Tenant) string {
	if o := strings.TrimRight(t.Settings.FrontendOrigin, "/"); o != "" {
		return o
	}
	if len(t.Hosts) > 0 {
		return "https://" + t.Hosts[0]
	}
	return ""
}

// fromAddress is the tenant's sender.
func (a *App) fromAddress(t *directory.Tenant) string {
	if t.Settings.FromAddress != "" {
		return t.Settings.FromAddress
	}
	return a.from
}

func (a *App) contact(t *directory.Tenant) string {
	if addr, err := mail.ParseAddress(a.fromAddress(t)); err == nil {
		return addr.Address
	}
	return a.fromAddress(t)
}

// link builds an origin URL with a query of raw pairs (name, value, ...).
// Values are our own codes and tokens ([A-Za-z0-9:_-]), written as they
// are, as upstream's links were.
func link(o, path string, pairs ...string) string {
	var b strings.Builder
	b.WriteString(o + path)
	for i := 0; i+1 < len(pairs); i += 2 {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(pairs[i]) + "=" + pairs[i+1])
	}
	return b.String()
}

// queueMail renders a template for the tenant and writes it to the outbox in
// tx. Delivery happens after commit, in the mail worker (§12 Q18).
func (a *App) queueMail(ctx context.Context, tx pgx.Tx, t *directory.Tenant, kind string, tpl emailTemplate,
	to []string, d emailData) error {
	d.Origin, d.Site, d.Contact = origin(t), t.DisplayName, a.contact(t)
	if d.Site == "" {
		d.Site = "StartUpWebApp"
	}
	subject, text, html, err := render(tpl, d)
	if err != nil {
		return err
	}
	from := a.fromAddress(t)
	return outbox.Enqueue(ctx, tx, outbox.Message{
		Kind: kind, From: from, To: to, Subject: subject, Text: text, HTML: html,
		Headers: map[string]string{"Reply-To": from},
	})
}

// mailbox formats a member's address for a To header.
func mailbox(name, addr string) string {
	return (&mail.Address{Name: strings.TrimSpace(name), Address: addr}).String()
}

// UnsubscribeLinks are the links and headers a marketing mail to a member
// or prospect carries (§8.2): the unsubscribe page with its token, and a
// List-Unsubscribe header naming it.
func UnsubscribeLinks(frontendOrigin, emCd, code, token string, prospect bool) (pageURL string, headers map[string]string) {
	codeName, tokenName := "mb_cd", "token"
	if prospect {
		codeName, tokenName = "pr_cd", "pr_token"
	}
	pageURL = link(strings.TrimRight(frontendOrigin, "/"), "/account/email-unsubscribe",
		"em_cd", emCd, codeName, code, tokenName, token)
	return pageURL, map[string]string{"List-Unsubscribe": "<" + pageURL + ">"}
}
