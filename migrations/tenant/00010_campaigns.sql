-- +goose Up
-- E-mail campaigns. A campaign is an email row of type Member or Prospect;
-- send_state says whether its worker is sending it (sending), was stopped
-- mid-way (stopped) or has finished (done). Sending snapshots the segment
-- into campaign_recipient, one row per recipient, unique per campaign; the
-- worker claims a row with FOR UPDATE SKIP LOCKED and, in the same
-- transaction, queues its mail in email_outbox, writes its email_sent row
-- and marks it sent: a crash rolls all three back together, so nobody is
-- mailed twice and nobody is skipped.
ALTER TABLE email ADD COLUMN send_state text NOT NULL DEFAULT 'idle'
    CHECK (send_state IN ('idle', 'sending', 'stopped', 'done'));
ALTER TABLE email ADD COLUMN send_started_at timestamptz;
ALTER TABLE email ADD COLUMN send_finished_at timestamptz;
-- A scheduled send: the worker leaves the campaign until then.
ALTER TABLE email ADD COLUMN send_after timestamptz;
-- The segment's optional filters: members with a verified address only;
-- members who joined (prospects who were recorded) at or after a time.
ALTER TABLE email ADD COLUMN segment_verified_only boolean NOT NULL DEFAULT false;
ALTER TABLE email ADD COLUMN segment_joined_after timestamptz;
-- The worker's query: campaigns being sent.
CREATE INDEX email_sending_idx ON email (id) WHERE send_state = 'sending';

CREATE TABLE campaign_recipient (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_id    bigint NOT NULL REFERENCES email (id) ON DELETE CASCADE,
    member_id   bigint REFERENCES member (id) ON DELETE CASCADE,
    prospect_id bigint REFERENCES prospect (id) ON DELETE CASCADE,
    -- pending until claimed; sent (mail queued, email_sent written) or
    -- skipped (unsubscribed or without an address since the snapshot).
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'skipped')),
    done_at     timestamptz,
    CHECK ((member_id IS NULL) <> (prospect_id IS NULL)),
    CHECK ((status = 'pending') = (done_at IS NULL)),
    UNIQUE (email_id, member_id),
    UNIQUE (email_id, prospect_id)
);
CREATE INDEX campaign_recipient_pending_idx ON campaign_recipient (email_id, id) WHERE status = 'pending';

-- +goose Down
DROP TABLE campaign_recipient;
DROP INDEX email_sending_idx;
ALTER TABLE email DROP COLUMN segment_joined_after;
ALTER TABLE email DROP COLUMN segment_verified_only;
ALTER TABLE email DROP COLUMN send_after;
ALTER TABLE email DROP COLUMN send_finished_at;
ALTER TABLE email DROP COLUMN send_started_at;
ALTER TABLE email DROP COLUMN send_state;
