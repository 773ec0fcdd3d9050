-- +goose Up
-- Admin operations run on a bounded worker pool: an accepted operation waits
-- queued until a worker takes it. A control plane that restarts runs again
-- every operation left queued or running, from what the record says: its
-- kind, its tenant and the admin it acts for (never a secret value).
ALTER TABLE operations DROP CONSTRAINT operations_status_check;
ALTER TABLE operations ADD CONSTRAINT operations_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed'));
ALTER TABLE operations ADD COLUMN actor text NOT NULL DEFAULT '';
CREATE INDEX operations_pending_idx ON operations (created_at) WHERE status IN ('queued', 'running');

-- +goose Down
DROP INDEX operations_pending_idx;
UPDATE operations SET status = 'running' WHERE status = 'queued';
ALTER TABLE operations DROP COLUMN actor;
ALTER TABLE operations DROP CONSTRAINT operations_status_check;
ALTER TABLE operations ADD CONSTRAINT operations_status_check
    CHECK (status IN ('running', 'succeeded', 'failed'));
