-- +goose Up
-- The platform registry: which tenants exist, where their databases live,
-- which hostnames route to them, and everything the control plane did to them.

CREATE TABLE db_servers (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    -- Where tenants' data-plane connections go (host, port); the admin
    -- connection string used for CREATE ROLE / DATABASE lives in the secrets
    -- store under admin_secret_ref, never in this table.
    host            text NOT NULL,
    port            integer NOT NULL DEFAULT 5432 CHECK (port BETWEEN 1 AND 65535),
    admin_secret_ref text NOT NULL,
    capacity        integer NOT NULL DEFAULT 500 CHECK (capacity > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{0,38}[a-z0-9]$'),
    display_name    text NOT NULL,
    status          text NOT NULL DEFAULT 'provisioning'
                    CHECK (status IN ('provisioning', 'active', 'suspended', 'failed', 'deleting', 'deleted')),
    plan            text NOT NULL DEFAULT 'standard',
    db_server_id    bigint REFERENCES db_servers (id),
    db_name         text NOT NULL UNIQUE,
    db_role         text NOT NULL UNIQUE,
    fork_of         bigint REFERENCES tenants (id),
    -- The newest tenant migration applied to this tenant's database.
    schema_version  bigint NOT NULL DEFAULT 0,
    last_migration_status text CHECK (last_migration_status IN ('ok', 'failed')),
    last_migration_error  text,
    last_migrated_at      timestamptz,
    -- Per-tenant settings: frontend_origin, from_address, rate limits, ...
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    secrets_ref     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE domains (
    hostname    text PRIMARY KEY CHECK (hostname = lower(hostname) AND hostname <> ''),
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX domains_tenant_id_idx ON domains (tenant_id);

-- Browser origins allowed to call a tenant with credentials (CORS) and
-- trusted for CSRF, e.g. http://localhost:8080.
CREATE TABLE tenant_origins (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    origin      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, origin)
);

-- One row per step of one run of a workflow (create, fork, delete, ...);
-- a retried workflow resumes at the first step not marked done.
CREATE TABLE provisioning_steps (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    operation   text NOT NULL,
    step        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('started', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 1,
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (tenant_id, operation, step)
);

-- Long-running admin operations, polled through their status URL.
CREATE TABLE operations (
    id          uuid PRIMARY KEY,
    tenant_id   bigint REFERENCES tenants (id) ON DELETE SET NULL,
    kind        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    tenant_id   bigint REFERENCES tenants (id) ON DELETE SET NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);

CREATE TABLE admin_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at  timestamptz
);

-- The local secrets backend: AES-256-GCM sealed values, every version kept
-- until the secret is deleted.
CREATE TABLE secrets (
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- Every committed change to routing data wakes the data-plane replicas.
-- +goose StatementBegin
CREATE FUNCTION notify_tenant_changed() RETURNS trigger AS $$
DECLARE
    tid bigint;
BEGIN
    IF TG_TABLE_NAME = 'tenants' THEN
        tid := COALESCE(NEW.id, OLD.id);
    ELSE
        tid := COALESCE(NEW.tenant_id, OLD.tenant_id);
    END IF;
    PERFORM pg_notify('tenant_changed', tid::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();
CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();
CREATE TRIGGER tenant_origins_changed AFTER INSERT OR UPDATE OR DELETE ON tenant_origins
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();

-- +goose Down
DROP TABLE secrets, admin_tokens, audit_log, operations, provisioning_steps,
    tenant_origins, domains, tenants, db_servers;
DROP FUNCTION notify_tenant_changed();
