-- +goose Up
-- A failed outbox row says why it failed: the relay refused the message for
-- good (a bounce at SMTP time: unknown mailbox, policy) or it stayed
-- undeliverable through every attempt. Campaign send logs count the two apart.
ALTER TABLE email_outbox ADD COLUMN bounced boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE email_outbox DROP COLUMN bounced;
