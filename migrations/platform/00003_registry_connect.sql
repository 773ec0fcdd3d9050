-- +goose Up
-- A new database lets PUBLIC connect and create temporary tables, so every
-- tenant's database login (on a shared server) could open the registry, read
-- its schema, LISTEN to tenant changes and fill temporary space. Only the
-- owner (the control plane) and the data plane's swa_dataplane members may
-- connect. Run by a role that is not the owner, both statements only warn.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO swa_dataplane', current_database());
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM swa_dataplane', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END
$$;
-- +goose StatementEnd
