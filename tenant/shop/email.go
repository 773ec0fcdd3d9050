package shop

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/tenant/cart"
)

// confirmation is what the order-confirmation e-mail says.
type confirmation struct {
	orderID           int64
	identifier        string
	member            bool
	memberID          *int64
	prospectID        *int64
	code              string // mb_cd or pr_cd
	name, email       string
	contents          cart.Contents
	shipping, billing address
	frontend          string
}

const crlf = "\r\n"

// prospectUnsubscribeText fills {prosepct_email_unsubscribe_str} (sic).
const prospectUnsubscribeText = "You are NOT subscribed to our marketing emails. If you would like to hear about new products and offers, reply to this email and we will add you to the list."

const templateSQL = `SELECT e.id, e.subject, e.body_text, e.from_address, e.bcc_address, coalesce(e.em_cd, '')
FROM email e JOIN order_configuration c ON c.string_value = e.em_cd
WHERE c.key = $1 ORDER BY c.id LIMIT 1`

// queueConfirmation writes the order-confirmation e-mail (§7.2 step 8, §8.2)
// into the outbox in the order's transaction, with an email_sent record.
// A template that is missing or does not format is recorded as an
// order_email_failure and logged; it never undoes the order.
func (a *App) queueConfirmation(ctx context.Context, tx pgx.Tx, t *directory.Tenant, c confirmation) error {
	if c.email == "" {
		a.log.Warn("[ORDER_EMAIL_FAILURE] order has no customer e-mail address", "tenant", t.Slug, "order", c.identifier)
		return nil
	}
	cfg := "order_confirmation_em_cd_prospect"
	if c.member {
		cfg = "order_confirmation_em_cd_member"
	}
	var emailID int64
	var subject, body, from, bcc, emCd string
	err := tx.QueryRow(ctx, templateSQL, cfg).Scan(&emailID, &subject, &body, &from, &bcc, &emCd)
	if errors.Is(err, pgx.ErrNoRows) {
		return a.emailFailure(ctx, tx, t, c, "template_lookup", "order confirmation template "+cfg+" does not exist")
	}
	if err != nil {
		return fmt.Errorf("confirmation template: %w", err)
	}
	if !c.member && c.prospectID != nil {
		if _, err := tx.Exec(ctx, `UPDATE prospect SET swa_comment = $2 WHERE id = $1`, *c.prospectID,
			"Captured from Stripe Checkout order identifier: "+c.identifier); err != nil {
			return fmt.Errorf("prospect comment: %w", err)
		}
	}
	text, err := pyFormat(body, confirmationFields(c, emCd))
	if err != nil {
		return a.emailFailure(ctx, tx, t, c, "formatting", err.Error())
	}
	m := mail.Message{
		Kind: "order_confirmation", From: from, To: []string{c.email}, Subject: subject, Text: text,
		Headers:   map[string]string{"Reply-To": from},
		DedupeKey: fmt.Sprintf("order_confirmation:%d", c.orderID),
	}
	if strings.TrimSpace(bcc) != "" {
		m.Bcc = []string{bcc}
	}
	if err := m.Validate(); err != nil {
		return a.emailFailure(ctx, tx, t, c, "formatting", err.Error())
	}
	if err := mail.Enqueue(ctx, tx, m); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO email_sent (member_id, prospect_id, email_id, sent_date_time) VALUES ($1, $2, $3, now())`,
		c.memberID, c.prospectID, emailID); err != nil {
		return fmt.Errorf("email sent: %w", err)
	}
	return nil
}

func (a *App) emailFailure(ctx context.Context, tx pgx.Tx, t *directory.Tenant, c confirmation, kind, msg string) error {
	a.log.Error("[ORDER_EMAIL_FAILURE] confirmation e-mail not queued", "tenant", t.Slug, "order", c.identifier, "failure_type", kind, "err", msg)
	_, err := tx.Exec(ctx, `INSERT INTO order_email_failure (order_id, failure_type, error_message, customer_email, is_member_order, phase)
VALUES ($1, $2, $3, $4, $5, 'email_send')`, c.orderID, kind, msg, trimmed(c.email, 254), c.member)
	if err != nil {
		return fmt.Errorf("order email failure: %w", err)
	}
	return nil
}

// dollars writes "$1,234.50".
func dollars(d decimal.Decimal) string {
	s := d.StringFixed(2)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac := s[:len(s)-3], s[len(s)-3:]
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := "$" + b.String() + frac
	if neg {
		out = "-" + out
	}
	return out
}

func noneIfEmpty(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

func addressText(a address) string {
	return noneIfEmpty(a.name) + crlf + noneIfEmpty(a.line1) + crlf +
		noneIfEmpty(a.city) + ", " + noneIfEmpty(a.state) + " " + noneIfEmpty(a.zip) + crlf + noneIfEmpty(a.country)
}

func confirmationFields(c confirmation, emCd string) map[string]string {
	var products []string
	for _, l := range c.contents.ProductLines() {
		parts := []string{l.ProductTitle}
		for _, p := range []*string{l.Description, l.Color, l.Size} {
			if p != nil && *p != "" {
				parts = append(parts, *p)
			}
		}
		products = append(products, fmt.Sprintf("%s, %s each, Quantity: %d, Subtotal: %s",
			strings.Join(parts, ", "), dollars(l.Price), l.Quantity, dollars(l.Subtotal())))
	}
	shipping := "None"
	if m := c.contents.Shipping; m != nil {
		shipping = m.Carrier + " " + dollars(m.Cost)
	}
	tt := c.contents.Totals
	totals := "Item Subtotal: " + dollars(tt.ItemSubtotal.Value) + crlf
	if tt.ItemDiscount.Set {
		totals += "Item Discount: -" + dollars(tt.ItemDiscount.Value) + crlf
	}
	totals += "Shipping: " + dollars(tt.ShippingSubtotal.Value) + crlf
	if tt.ShippingDiscount.Set {
		totals += "Shipping Discount: -" + dollars(tt.ShippingDiscount.Value) + crlf
	}
	totals += "Order Total: " + dollars(tt.Total()) + crlf
	f := map[string]string{
		"line_break":                     crlf + crlf,
		"short_line_break":               crlf,
		"recipient_first_name":           c.name,
		"order_information":              "Order Identifier: " + c.identifier,
		"ENVIRONMENT_DOMAIN":             c.frontend,
		"identifier":                     c.identifier,
		"em_cd":                          emCd,
		"product_information":            strings.Join(products, crlf),
		"shipping_information":           shipping,
		"order_total_information":        totals,
		"shipping_address_information":   addressText(c.shipping),
		"billing_address_information":    addressText(c.billing),
		"payment_information":            "None: **** **** **** None, Exp: None/None",
		"prosepct_email_unsubscribe_str": prospectUnsubscribeText,
	}
	if c.member {
		f["mb_cd"] = c.code
	} else {
		f["pr_cd"] = c.code
	}
	return f
}

// pyFormat fills a Python str.format template with named fields: "{{" and
// "}}" are literal braces, "{name}" is replaced, and an unknown or malformed
// field is an error (as upstream's KeyError/ValueError).
func pyFormat(tpl string, fields map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tpl); i++ {
		ch := tpl[i]
		switch {
		case ch == '{' && i+1 < len(tpl) && tpl[i+1] == '{':
			b.WriteByte('{')
			i++
		case ch == '}' && i+1 < len(tpl) && tpl[i+1] == '}':
			b.WriteByte('}')
			i++
		case ch == '{':
			end := strings.IndexByte(tpl[i:], '}')
			if end < 0 {
				return "", errors.New("template: unmatched '{'")
			}
			name := tpl[i+1 : i+end]
			v, ok := fields[name]
			if !ok {
				return "", fmt.Errorf("template: unknown placeholder {%s}", name)
			}
			b.WriteString(v)
			i += end
		case ch == '}':
			return "", errors.New("template: single '}'")
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}
