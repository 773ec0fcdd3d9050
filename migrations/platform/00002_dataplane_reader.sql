-- +goose Up
-- The data plane reads the registry through members of swa_dataplane, a
-- group role that may only SELECT what routing and tenant connections need
-- (and the sealed secrets, which it cannot open without the master key). A
-- compromised data-plane replica cannot rewrite the registry.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'swa_dataplane') THEN
        CREATE ROLE swa_dataplane NOLOGIN;
    END IF;
END
$$;
-- +goose StatementEnd
GRANT SELECT ON db_servers, tenants, domains, tenant_origins, secrets TO swa_dataplane;

-- +goose Down
REVOKE SELECT ON db_servers, tenants, domains, tenant_origins, secrets FROM swa_dataplane;
