-- +goose Up
-- Tenants' own frontends (platform/sites). A deploy records a pending
-- version with its files, stores the blobs they name, then in one
-- transaction marks the version ready and points sites.current_version at
-- it: the data plane only ever follows that pointer, so a visitor sees a
-- whole version, and a deploy cut off anywhere leaves only an invisible
-- pending version that a retry of the same bundle completes.

CREATE TABLE sites (
    tenant_id       bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    current_version bigint,
    -- replace: the site answers on every host of the tenant, in place of the
    -- built-in storefront; domain: only on the one named hostname (one of
    -- the tenant's domains), whose origin the tenant then trusts for CORS.
    mode            text NOT NULL DEFAULT 'replace' CHECK (mode IN ('replace', 'domain')),
    domain          text CHECK ((mode = 'domain') = (domain IS NOT NULL)),
    next_number     integer NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE site_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number      integer NOT NULL CHECK (number > 0),
    status      text NOT NULL CHECK (status IN ('pending', 'ready')),
    -- SHA-256 of the version's file list (paths and content hashes): a
    -- retried deploy of the same bundle finds its pending version by it.
    digest      bytea NOT NULL,
    files       integer NOT NULL,
    bytes       bigint NOT NULL,
    actor       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ready_at    timestamptz,
    UNIQUE (tenant_id, number)
);
CREATE INDEX site_versions_digest_idx ON site_versions (tenant_id, digest);

-- The version served cannot be deleted while it is served.
ALTER TABLE sites ADD CONSTRAINT sites_current_version_fkey
    FOREIGN KEY (current_version) REFERENCES site_versions (id);

-- Content-addressed blobs of a tenant, wherever their bytes live (the
-- database backend's site_blob_data, or S3): stored says the bytes were
-- written; the garbage collector clears it before it deletes them.
CREATE TABLE site_blobs (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    size        bigint NOT NULL,
    stored      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256)
);

CREATE TABLE site_files (
    version_id   bigint NOT NULL REFERENCES site_versions (id) ON DELETE CASCADE,
    tenant_id    bigint NOT NULL,
    path         text NOT NULL,
    content_type text NOT NULL,
    sha256       bytea NOT NULL,
    size         bigint NOT NULL,
    -- Precompressed variants, where they are smaller.
    gzip_sha256  bytea,
    gzip_size    bigint,
    br_sha256    bytea,
    br_size      bigint,
    PRIMARY KEY (version_id, path),
    FOREIGN KEY (tenant_id, sha256) REFERENCES site_blobs (tenant_id, sha256),
    FOREIGN KEY (tenant_id, gzip_sha256) REFERENCES site_blobs (tenant_id, sha256),
    FOREIGN KEY (tenant_id, br_sha256) REFERENCES site_blobs (tenant_id, sha256)
);
CREATE INDEX site_files_blob_idx ON site_files (tenant_id, sha256);
CREATE INDEX site_files_gzip_idx ON site_files (tenant_id, gzip_sha256) WHERE gzip_sha256 IS NOT NULL;
CREATE INDEX site_files_br_idx ON site_files (tenant_id, br_sha256) WHERE br_sha256 IS NOT NULL;

-- The bytes of the database blob backend (the default; S3 in production).
CREATE TABLE site_blob_data (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256      bytea NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);

-- A switched version, mode or domain wakes the data-plane replicas.
CREATE TRIGGER sites_changed AFTER INSERT OR UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();

GRANT SELECT ON sites, site_versions, site_files, site_blob_data TO swa_dataplane;

-- +goose Down
REVOKE SELECT ON sites, site_versions, site_files, site_blob_data FROM swa_dataplane;
DROP TRIGGER sites_changed ON sites;
ALTER TABLE sites DROP CONSTRAINT sites_current_version_fkey;
DROP TABLE site_blob_data, site_files, site_blobs, site_versions, sites;
