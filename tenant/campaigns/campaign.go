package campaigns

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/directory"
	outbox "github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/tenant/account"
)

// Type is who a campaign goes to; the values are email_type's ids.
type Type int64

// The campaign types of email_type.
const (
	Member   Type = 1
	Prospect Type = 2
)

// ParseType reads "member" or "prospect".
func ParseType(s string) (Type, bool) {
	switch s {
	case "member":
		return Member, true
	case "prospect":
		return Prospect, true
	}
	return 0, false
}

func (t Type) String() string {
	if t == Prospect {
		return "prospect"
	}
	return "member"
}

// Status is email_status's id: Draft, Ready (being sent), Sent.
type Status int64

// The campaign statuses of email_status.
const (
	Draft Status = 1
	Ready Status = 2
	Sent  Status = 3
)

func (s Status) String() string {
	switch s {
	case Ready:
		return "ready"
	case Sent:
		return "sent"
	}
	return "draft"
}

// Errors the back office maps to 4xx answers.
var (
	ErrNotFound = errors.New("campaign not found")
	// ErrInvalid wraps a field problem; the message names the field.
	ErrInvalid = errors.New("invalid campaign")
	// ErrState is an action the campaign's state forbids (editing a
	// campaign being sent, sending a sent one, ...).
	ErrState = errors.New("campaign state")
)

// Input is what staff write: every field of a campaign.
type Input struct {
	Subject string
	From    string
	Bcc     string
	Type    Type
	Text    string
	HTML    string
	Filters
}

// Filters narrow a campaign's segment.
type Filters struct {
	// VerifiedOnly keeps members whose address is verified (members only).
	VerifiedOnly bool
	// JoinedAfter keeps members who joined, prospects who were recorded,
	// at or after it; nil keeps everyone.
	JoinedAfter *time.Time
}

// Check validates in, placeholders included.
func (in Input) Check() error {
	bad := func(f string, args ...any) error { return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(f, args...)) }
	switch {
	case strings.TrimSpace(in.Subject) == "" || len(in.Subject) > 300 || strings.ContainsAny(in.Subject, "\r\n"):
		return bad("subject: required, one line of at most 300 characters")
	case in.Type != Member && in.Type != Prospect:
		return bad("type: member or prospect")
	case strings.TrimSpace(in.Text) == "" || len(in.Text) > 5000:
		return bad("body_text: required, at most 5000 characters")
	case len(in.HTML) > 15000:
		return bad("body_html: at most 15000 characters")
	case len(in.From) > 100 || len(in.Bcc) > 100:
		return bad("from, bcc: at most 100 characters")
	}
	if _, err := mail.ParseAddress(in.From); err != nil {
		return bad("from: not an address")
	}
	if in.Bcc != "" {
		if _, err := mail.ParseAddress(in.Bcc); err != nil {
			return bad("bcc: not an address")
		}
	}
	if in.VerifiedOnly && in.Type == Prospect {
		return bad("verified_only: prospects have no verified address; it is for member campaigns")
	}
	if err := Validate(in.Type, in.Text, in.HTML); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Campaign is one email row of type Member or Prospect, with its progress.
type Campaign struct {
	ID int64
	Input
	EmCd      string
	Status    Status
	SendState string // idle, sending, stopped, done
	// SendAfter is when a scheduled send starts (nil before any send).
	SendAfter  *time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	// Counts of campaign_recipient by status (zero before sending).
	Pending, SentCount, Skipped int
	// Of the mails sent, how many the SMTP relay took (Delivered), refused
	// for good (Bounced) or never took through every attempt (Failed); the
	// rest are still being tried. Get fills them; List leaves them zero.
	Delivered, Failed, Bounced int
}

// Querier is what reads need: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// campaignColumns are a campaign's own columns, as scanCampaign reads
// them before the three counts.
const campaignColumns = `e.id, e.subject, e.from_address, e.bcc_address, e.email_type_id, e.body_text, e.body_html,
       coalesce(e.em_cd, ''), e.email_status_id, e.send_state, e.send_after, e.segment_verified_only, e.segment_joined_after,
       e.send_started_at, e.send_finished_at`

const selectCampaign = `
SELECT ` + campaignColumns + `,
       count(r.id) FILTER (WHERE r.status = 'pending'), count(r.id) FILTER (WHERE r.status = 'sent'),
       count(r.id) FILTER (WHERE r.status = 'skipped')
FROM email e LEFT JOIN campaign_recipient r ON r.email_id = e.id`

func scanCampaign(row pgx.Row) (*Campaign, error) {
	var c Campaign
	err := row.Scan(&c.ID, &c.Subject, &c.From, &c.Bcc, &c.Type, &c.Text, &c.HTML, &c.EmCd, &c.Status,
		&c.SendState, &c.SendAfter, &c.VerifiedOnly, &c.JoinedAfter, &c.StartedAt, &c.FinishedAt, &c.Pending, &c.SentCount, &c.Skipped)
	return &c, err
}

// orderTemplates are emails 1 and 2, the order confirmations the shop sends;
// they are not campaigns.
const notOrderTemplate = ` e.em_cd IS DISTINCT FROM 'gvREoqen93ffZsmBIc8zl' AND e.em_cd IS DISTINCT FROM 'FpGyZy6kld9R2XTjqvBQN'`

// List returns every campaign, newest first.
func List(ctx context.Context, q Querier) ([]*Campaign, error) {
	rows, err := q.Query(ctx, selectCampaign+` WHERE`+notOrderTemplate+` GROUP BY e.id ORDER BY e.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	defer rows.Close()
	var out []*Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("list campaigns: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Get returns campaign id.
func Get(ctx context.Context, q Querier, id int64) (*Campaign, error) {
	c, err := scanCampaign(q.QueryRow(ctx, selectCampaign+` WHERE e.id = $1 AND`+notOrderTemplate+` GROUP BY e.id`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %d: %w", id, err)
	}
	// The campaign's mails are the outbox rows its dedupe keys name.
	err = q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed' AND NOT bounced),
       count(*) FILTER (WHERE status = 'failed' AND bounced)
FROM email_outbox WHERE kind = 'campaign' AND dedupe_key LIKE 'campaign:' || $1::bigint || ':%'`, id).Scan(&c.Delivered, &c.Failed, &c.Bounced)
	if err != nil {
		return nil, fmt.Errorf("campaign %d: delivery: %w", id, err)
	}
	return c, nil
}

// newEmCd is a fresh 20-character code, as upstream's em_cd.
func newEmCd() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Create saves a new draft campaign and returns its id.
func Create(ctx context.Context, tx pgx.Tx, in Input) (int64, error) {
	if err := in.Check(); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO email (subject, email_type_id, email_status_id, body_html, body_text, from_address, bcc_address, em_cd,
segment_verified_only, segment_joined_after)
VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, in.Subject, in.Type, in.HTML, in.Text, in.From, in.Bcc, newEmCd(),
		in.VerifiedOnly, in.JoinedAfter).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("create campaign: %w", err)
	}
	return id, nil
}

// Update replaces a campaign's fields; only a campaign never sent can change.
func Update(ctx context.Context, tx pgx.Tx, id int64, in Input) error {
	if err := in.Check(); err != nil {
		return err
	}
	c, err := lock(ctx, tx, id)
	if err != nil {
		return err
	}
	if c.SendState != "idle" {
		return fmt.Errorf("%w: a campaign being or already sent cannot change", ErrState)
	}
	_, err = tx.Exec(ctx, `UPDATE email SET subject = $2, email_type_id = $3, body_html = $4, body_text = $5,
from_address = $6, bcc_address = $7, segment_verified_only = $8, segment_joined_after = $9 WHERE id = $1`,
		id, in.Subject, in.Type, in.HTML, in.Text, in.From, in.Bcc, in.VerifiedOnly, in.JoinedAfter)
	if err != nil {
		return fmt.Errorf("update campaign %d: %w", id, err)
	}
	return nil
}

// lock reads and row-locks campaign id.
func lock(ctx context.Context, tx pgx.Tx, id int64) (*Campaign, error) {
	var c Campaign
	err := tx.QueryRow(ctx, `SELECT e.id, e.email_type_id, e.email_status_id, e.send_state FROM email e
WHERE e.id = $1 AND`+notOrderTemplate+` FOR UPDATE`, id).Scan(&c.ID, &c.Type, &c.Status, &c.SendState)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("lock campaign %d: %w", id, err)
	}
	return &c, nil
}

// segmentInsert snapshots a campaign's recipients ($1 the campaign, $2
// and $3 its filters): members subscribed to the newsletter and not
// unsubscribed, prospects not unsubscribed, each with an address and an
// unsubscribe token (the eligibility Segment lists too).
func segmentInsert(t Type) string {
	if t == Prospect {
		return `INSERT INTO campaign_recipient (email_id, prospect_id)
SELECT $1, p.id FROM prospect p WHERE` + eligible(t, 2) + ` ORDER BY p.id ON CONFLICT DO NOTHING`
	}
	return `INSERT INTO campaign_recipient (email_id, member_id)
SELECT $1, m.id FROM member m JOIN account a ON a.id = m.account_id WHERE` + eligible(t, 2) + ` ORDER BY m.id ON CONFLICT DO NOTHING`
}

// MaxScheduleAhead is how far ahead a send may be scheduled.
const MaxScheduleAhead = 366 * 24 * time.Hour

// Send starts sending campaign id to its segment now, or resumes a stopped
// one; the Worker does the sending. It returns the number of recipients.
func Send(ctx context.Context, tx pgx.Tx, id int64) (int, error) {
	return Schedule(ctx, tx, id, time.Time{})
}

// Schedule is Send from at on (zero or past: now); on a campaign already
// scheduled it moves the time. The segment is taken when it is first sent
// or scheduled; who unsubscribes before their mail is skipped then.
func Schedule(ctx context.Context, tx pgx.Tx, id int64, at time.Time) (int, error) {
	if !at.IsZero() && time.Until(at) > MaxScheduleAhead {
		return 0, fmt.Errorf("%w: at: at most a year ahead", ErrInvalid)
	}
	c, err := lock(ctx, tx, id)
	if err != nil {
		return 0, err
	}
	switch c.SendState {
	case "done":
		return 0, fmt.Errorf("%w: the campaign was sent", ErrState)
	case "idle":
		var f Filters
		if err := tx.QueryRow(ctx, `SELECT segment_verified_only, segment_joined_after FROM email WHERE id = $1`, id).Scan(&f.VerifiedOnly, &f.JoinedAfter); err != nil {
			return 0, fmt.Errorf("campaign %d: filters: %w", id, err)
		}
		if _, err := tx.Exec(ctx, segmentInsert(c.Type), id, f.VerifiedOnly, f.JoinedAfter); err != nil {
			return 0, fmt.Errorf("campaign %d: segment: %w", id, err)
		}
	}
	var after *time.Time
	if !at.IsZero() {
		after = &at
	}
	if _, err := tx.Exec(ctx, `UPDATE email SET send_state = 'sending', email_status_id = 2,
send_after = greatest(coalesce($2, now()), now()),
send_started_at = CASE WHEN send_started_at IS NULL OR send_started_at > now() THEN greatest(coalesce($2, now()), now())
                       ELSE send_started_at END WHERE id = $1`, id, after); err != nil {
		return 0, fmt.Errorf("campaign %d: start: %w", id, err)
	}
	var n int
	err = tx.QueryRow(ctx, `SELECT count(*) FROM campaign_recipient WHERE email_id = $1`, id).Scan(&n)
	return n, err
}

// Stop pauses a campaign being sent: it waits for the batches in flight,
// and no batch starts after it commits. Send resumes it.
func Stop(ctx context.Context, tx pgx.Tx, id int64) error {
	c, err := lock(ctx, tx, id)
	if err != nil {
		return err
	}
	if c.SendState != "sending" {
		return fmt.Errorf("%w: the campaign is not being sent", ErrState)
	}
	_, err = tx.Exec(ctx, `UPDATE email SET send_state = 'stopped' WHERE id = $1`, id)
	return err
}

// Recipient is who a campaign mail goes to, with the values of its
// placeholders.
type Recipient struct {
	MemberID, ProspectID int64
	Email                string
	FirstName, LastName  string
	Code                 string // mb_cd or pr_cd
	Token                string // the unsubscribe token
}

// Links are where a tenant's campaign links point.
type Links struct {
	// Frontend is the origin of the tenant's site (its pages, e.g. the
	// unsubscribe page).
	Frontend string
	// API is the origin of the tenant's API (the one-click endpoint).
	API string
}

// TenantLinks derives a tenant's origins as the account mails do.
func TenantLinks(t *directory.Tenant) Links {
	var api string
	if len(t.Hosts) > 0 {
		api = "https://" + t.Hosts[0]
	}
	front := strings.TrimRight(t.Settings.FrontendOrigin, "/")
	if front == "" {
		front = api
	}
	return Links{Frontend: front, API: api}
}

// DraftList marks a copy sent to staff: the DRAFT prefix and the list of who
// would receive it.
type DraftList struct {
	Recipients []string
}

// Compose renders campaign c for r as a mail to r's address.
func Compose(c *Campaign, r Recipient, l Links, draft *DraftList) (outbox.Message, error) {
	prospect := c.Type == Prospect
	page, _ := account.UnsubscribeLinks(l.Frontend, c.EmCd, r.Code, r.Token, prospect)
	tokenName := "token"
	if prospect {
		tokenName = "pr_token"
	}
	oneClick := l.API + account.OneClickPath + "?" + tokenName + "=" + r.Token
	v := map[string]string{
		"recipient_first_name": r.FirstName, "recipient_last_name": r.LastName,
		"em_cd": c.EmCd, "msg_subject": c.Subject, "ENVIRONMENT_DOMAIN": l.Frontend,
		"line_break": "\r\n\r\n", "short_line_break": "\r\n", "unsubscribe_url": page,
		"mb_cd": r.Code, "token": r.Token, "pr_cd": r.Code, "pr_token": r.Token,
	}
	subject := c.Subject
	if draft != nil {
		subject = "DRAFT: " + subject
		list := strings.Join(draft.Recipients, "\r\n")
		v["draft_text"] = fmt.Sprintf("DRAFT. This campaign would go to %d recipient(s):\r\n%s\r\n\r\n", len(draft.Recipients), list)
		v["draft_html"] = "<div class=\"draft\"><p><b>DRAFT.</b> This campaign would go to " +
			fmt.Sprint(len(draft.Recipients)) + " recipient(s):</p><pre>" + htmlEscape(list) + "</pre></div>"
	}
	text, err := render(c.Text, c.Type, v, false)
	if err != nil {
		return outbox.Message{}, err
	}
	body, err := render(c.HTML, c.Type, v, true)
	if err != nil {
		return outbox.Message{}, err
	}
	// A draft without the draft placeholders still shows its list.
	if draft != nil && !uses(c.Text, "draft_text") {
		text = v["draft_text"] + text
	}
	if draft != nil && body != "" && !uses(c.HTML, "draft_html") {
		body = v["draft_html"] + body
	}
	// Every mail carries its unsubscribe link, written by the body or added.
	if !uses(c.Text, tokenName) && !uses(c.Text, "unsubscribe_url") {
		text += "\r\n\r\nUnsubscribe: " + page
	}
	if body != "" && !uses(c.HTML, tokenName) && !uses(c.HTML, "unsubscribe_url") {
		body += `<p class="unsubscribe"><a href="` + htmlEscape(page) + `">Unsubscribe</a></p>`
	}
	m := outbox.Message{
		Kind: "campaign", From: c.From, To: []string{mailbox(r.FirstName, r.LastName, r.Email)},
		Subject: subject, Text: text, HTML: body,
		Headers: map[string]string{
			"List-Unsubscribe":      "<" + oneClick + ">, <" + page + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
	}
	if c.Bcc != "" && draft == nil {
		m.Bcc = []string{c.Bcc}
	}
	return m, nil
}

func mailbox(first, last, addr string) string {
	return (&mail.Address{Name: strings.TrimSpace(first + " " + last), Address: addr}).String()
}
