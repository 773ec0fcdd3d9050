-- +goose Up
-- Self-service sign-ups on the platform site. A pending sign-up holds the
-- founder's choices until they prove the address: the verification token is
-- kept only as its SHA-256, the password only as its argon2id hash. A
-- verified sign-up holds its subdomain (one verified sign-up per slug), and
-- tenant_id once the tenant is reserved for it; a restarted control plane
-- carries every verified, unfinished sign-up on to an active shop.
CREATE TABLE signups (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text NOT NULL,
    password_hash   text NOT NULL,
    shop_name       text NOT NULL,
    slug            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'verified', 'active', 'failed')),
    token_hash      bytea NOT NULL UNIQUE,
    expires_at      timestamptz NOT NULL,
    client_addr     text NOT NULL DEFAULT '',
    tenant_id       bigint REFERENCES tenants (id) ON DELETE SET NULL,
    progress_hash   bytea UNIQUE,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    verified_at     timestamptz,
    activated_at    timestamptz,
    handed_off_at   timestamptz
);
CREATE INDEX signups_email_idx ON signups (lower(email), created_at);
CREATE UNIQUE INDEX signups_slug_claimed_idx ON signups (slug) WHERE status IN ('verified', 'active');
CREATE INDEX signups_unfinished_idx ON signups (verified_at) WHERE status = 'verified';

-- +goose Down
DROP TABLE signups;
