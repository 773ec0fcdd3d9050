package campaigns

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	outbox "github.com/startupwebapp/platform/platform/mail"
)

// The segment as Send takes it, for the draft's list and the preview.
const (
	selectMembers = `
SELECT m.id, 0::bigint, a.email, a.first_name, a.last_name, coalesce(m.mb_cd, ''), coalesce(m.email_unsubscribe_string_signed, '')
FROM member m JOIN account a ON a.id = m.account_id`
	memberEligible = ` m.newsletter_subscriber AND NOT m.email_unsubscribed AND a.is_active AND a.email <> ''
  AND m.email_unsubscribe_string_signed IS NOT NULL`
	// memberFilters and prospectFilters are the segment's optional filters,
	// with %[1]s and %[2]s the parameters holding VerifiedOnly and
	// JoinedAfter.
	memberFilters = ` AND (NOT %[1]s OR m.email_verified) AND (%[2]s::timestamptz IS NULL OR a.date_joined >= %[2]s)`
	// (VerifiedOnly is refused for prospects; it is named only to give its
	// parameter a type.)
	prospectFilters = ` AND %[1]s::boolean IS NOT NULL AND (%[2]s::timestamptz IS NULL OR p.created_date_time >= %[2]s)`
	selectProspects = `
SELECT 0::bigint, p.id, coalesce(p.email, ''), coalesce(p.first_name, ''), coalesce(p.last_name, ''), coalesce(p.pr_cd, ''),
       coalesce(p.email_unsubscribe_string_signed, '')
FROM prospect p`
	prospectEligible = ` NOT p.email_unsubscribed AND coalesce(p.email, '') <> '' AND p.email_unsubscribe_string_signed IS NOT NULL`
)

func scanRecipients(rows pgx.Rows) ([]Recipient, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recipient, error) {
		var r Recipient
		err := row.Scan(&r.MemberID, &r.ProspectID, &r.Email, &r.FirstName, &r.LastName, &r.Code, &r.Token)
		return r, err
	})
}

// eligible is the WHERE condition of a segment of type t with filters f,
// its filter parameters numbered from first.
func eligible(t Type, first int) string {
	v, j := fmt.Sprintf("$%d", first), fmt.Sprintf("$%d", first+1)
	if t == Prospect {
		return prospectEligible + fmt.Sprintf(prospectFilters, v, j)
	}
	return memberEligible + fmt.Sprintf(memberFilters, v, j)
}

// Segment returns up to limit of the people a campaign of type t with
// filters f would go to now, and how many there are in all.
func Segment(ctx context.Context, q Querier, t Type, f Filters, limit int) ([]Recipient, int, error) {
	sel, table := selectMembers, "member m JOIN account a ON a.id = m.account_id"
	if t == Prospect {
		sel, table = selectProspects, "prospect p"
	}
	rows, err := q.Query(ctx, sel+` WHERE`+eligible(t, 2)+` ORDER BY 2, 1 LIMIT $1`, limit, f.VerifiedOnly, f.JoinedAfter)
	if err != nil {
		return nil, 0, fmt.Errorf("segment: %w", err)
	}
	list, err := scanRecipients(rows)
	if err != nil {
		return nil, 0, fmt.Errorf("segment: %w", err)
	}
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE`+eligible(t, 1), f.VerifiedOnly, f.JoinedAfter).Scan(&n); err != nil {
		return nil, 0, fmt.Errorf("segment count: %w", err)
	}
	return list, n, nil
}

// FindRecipient returns member or prospect id (as t says), whatever its
// subscription: staff may preview for anyone.
func FindRecipient(ctx context.Context, q Querier, t Type, id int64) (Recipient, error) {
	sel, where := selectMembers, ` m.id = $1`
	if t == Prospect {
		sel, where = selectProspects, ` p.id = $1`
	}
	rows, err := q.Query(ctx, sel+` WHERE`+where, id)
	if err != nil {
		return Recipient{}, fmt.Errorf("recipient %d: %w", id, err)
	}
	list, err := scanRecipients(rows)
	if err != nil {
		return Recipient{}, fmt.Errorf("recipient %d: %w", id, err)
	}
	if len(list) == 0 {
		return Recipient{}, ErrNotFound
	}
	return list[0], nil
}

// MaxDraftList bounds the recipient list a draft shows.
const MaxDraftList = 500

// QueueDraft queues campaign c's draft to a staff address, rendered for the
// first recipient of the segment (or an example one when it is empty) and
// listing who would receive it. It returns how many would.
func QueueDraft(ctx context.Context, tx pgx.Tx, c *Campaign, staffName, staffAddr string, l Links) (int, error) {
	list, n, err := Segment(ctx, tx, c.Type, c.Filters, MaxDraftList)
	if err != nil {
		return 0, err
	}
	names := make([]string, 0, len(list)+1)
	for _, r := range list {
		names = append(names, mailbox(r.FirstName, r.LastName, r.Email))
	}
	if n > len(list) {
		names = append(names, fmt.Sprintf("... and %d more", n-len(list)))
	}
	example := Recipient{Email: staffAddr, FirstName: staffName, Code: "example", Token: "example"}
	if len(list) > 0 {
		example = list[0]
	}
	example.Email = staffAddr
	m, err := Compose(c, example, l, &DraftList{Recipients: names})
	if err != nil {
		return 0, err
	}
	m.Kind = "campaign_draft"
	if err := outbox.Enqueue(ctx, tx, m); err != nil {
		if errors.Is(err, outbox.ErrInvalid) {
			return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return 0, err
	}
	return n, nil
}
