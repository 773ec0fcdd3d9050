-- +goose Up
-- Moving a tenant's database to another database server. While the last
-- changes are copied, writes_paused makes the data plane answer requests
-- that would write with 503 and Retry-After (reads keep working). One row
-- of tenant_moves per tenant holds its latest move: the servers it goes
-- from and to (recorded before anything is copied, so a restarted control
-- plane resumes it), and once switched, when the copy left on the old
-- server is dropped.
ALTER TABLE tenants ADD COLUMN writes_paused boolean NOT NULL DEFAULT false;

CREATE TABLE tenant_moves (
    tenant_id       bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    from_server_id  bigint NOT NULL REFERENCES db_servers (id),
    to_server_id    bigint NOT NULL REFERENCES db_servers (id) CHECK (to_server_id <> from_server_id),
    status          text NOT NULL CHECK (status IN ('moving', 'switched', 'finished', 'failed')),
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    switched_at     timestamptz,
    paused_ms       integer,
    drop_after      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX tenant_moves_due_idx ON tenant_moves (drop_after) WHERE status = 'switched';

-- +goose Down
DROP TABLE tenant_moves;
ALTER TABLE tenants DROP COLUMN writes_paused;
