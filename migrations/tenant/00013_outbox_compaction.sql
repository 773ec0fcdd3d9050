-- +goose Up
-- Mail that was sent or failed keeps its row for good (campaign counts, the
-- plan's monthly quota and dedupe keys read them), but not its bodies: after
-- the retention the mail worker blanks them (they are the bulk of the table
-- and hold personal data and one-time links) and stamps compacted_at.
ALTER TABLE email_outbox ADD COLUMN compacted_at timestamptz;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_compacted_done CHECK (compacted_at IS NULL OR status <> 'queued');
-- The compaction's query: finished rows not yet compacted, oldest first.
CREATE INDEX email_outbox_compact_idx ON email_outbox (created_at) WHERE status <> 'queued' AND compacted_at IS NULL;

-- +goose Down
DROP INDEX email_outbox_compact_idx;
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_compacted_done;
ALTER TABLE email_outbox DROP COLUMN compacted_at;
