package campaigns_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/tenant/campaigns"
)

// TestSegmentFiltersAndSchedule: a campaign's filters (verified members
// only, joined after a time) narrow its segment alike in the list the
// draft shows and in the send; a send scheduled for later is left alone by
// the worker until it is due, and moving it to now sends it; a prospect
// campaign cannot ask for verified addresses, nor a send for more than a
// year ahead.
func TestSegmentFiltersAndSchedule(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.seed(t, "member", 0, 6, true, false)
	// Members 0-2 verified; members 0, 1, 3, 4 joined recently, 2 and 5 long ago.
	f.exec(t, `UPDATE member SET email_verified = true WHERE account_id IN (SELECT id FROM account WHERE email = ANY($1))`,
		[]string{f.addr("member", 0), f.addr("member", 1), f.addr("member", 2)})
	f.exec(t, `UPDATE account SET date_joined = now() - interval '400 days' WHERE email = ANY($1)`,
		[]string{f.addr("member", 2), f.addr("member", 5)})
	since := time.Now().Add(-30 * 24 * time.Hour)

	id, subject := f.campaign(t, campaigns.Member)
	err := f.tx(t, func(tx pgx.Tx) error {
		c, err := campaigns.Get(ctx, tx, id)
		if err != nil {
			return err
		}
		in := c.Input
		in.VerifiedOnly, in.JoinedAfter = true, &since
		return campaigns.Update(ctx, tx, id, in)
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := campaigns.Get(ctx, f.db, id)
	if err != nil || !c.VerifiedOnly || c.JoinedAfter == nil {
		t.Fatalf("filters not kept: %+v %v", c, err)
	}
	if _, n, err := campaigns.Segment(ctx, f.db, campaigns.Member, c.Filters, 10); err != nil || n != 2 {
		t.Fatalf("filtered segment = %d (%v), want members 0 and 1", n, err)
	}

	// Scheduled an hour ahead: the worker sends nothing yet.
	var n int
	if err := f.tx(t, func(tx pgx.Tx) (err error) {
		n, err = campaigns.Schedule(ctx, tx, id, time.Now().Add(time.Hour))
		return err
	}); err != nil || n != 2 {
		t.Fatalf("schedule: %d recipients, %v", n, err)
	}
	if sent, err := f.worker(t, campaigns.Options{}).RunTenant(ctx, f.tenant); err != nil || sent != 0 {
		t.Fatalf("worker before the time: sent %d, %v", sent, err)
	}
	if c, _ := campaigns.Get(ctx, f.db, id); c.SendAfter == nil || time.Until(*c.SendAfter) < 50*time.Minute || c.SentCount != 0 {
		t.Fatalf("scheduled campaign %+v", c)
	}
	// Sent now instead: the two filtered members, once each.
	f.send(t, id)
	if _, err := f.worker(t, campaigns.Options{}).RunTenant(ctx, f.tenant); err != nil {
		t.Fatal(err)
	}
	f.exactlyOnce(t, id, subject, []string{f.addr("member", 0), f.addr("member", 1)})

	pid, _ := f.campaign(t, campaigns.Prospect)
	err = f.tx(t, func(tx pgx.Tx) error {
		c, err := campaigns.Get(ctx, tx, pid)
		if err != nil {
			return err
		}
		in := c.Input
		in.VerifiedOnly = true
		return campaigns.Update(ctx, tx, pid, in)
	})
	if !errors.Is(err, campaigns.ErrInvalid) {
		t.Errorf("verified-only prospect campaign: %v, want ErrInvalid", err)
	}
	err = f.tx(t, func(tx pgx.Tx) error {
		_, err := campaigns.Schedule(ctx, tx, pid, time.Now().Add(400*24*time.Hour))
		return err
	})
	if !errors.Is(err, campaigns.ErrInvalid) {
		t.Errorf("schedule 400 days ahead: %v, want ErrInvalid", err)
	}
}

func (f *fixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := f.db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
