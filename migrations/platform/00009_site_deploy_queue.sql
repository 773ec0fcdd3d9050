-- +goose Up
-- A tenant's owner deploys and rolls back the tenant's site from the back
-- office. The bundle and the request stay in the tenant's own database
-- (site_deploy_request, tenant migration 00010); the data plane, which may
-- not write the sites tables, tells the control plane with the one
-- function below, which runs as the registry's owner and only queues the
-- request's id. The control plane's site worker claims a row (a lease:
-- claimed_until), does the deploy or rollback, writes the outcome to the
-- tenant's request row and deletes the queue row; a lease that runs out
-- (a worker that died) lets another worker take the row again.
CREATE TABLE site_deploy_queue (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    request_id    bigint NOT NULL,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    attempts      int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, request_id)
);

-- +goose StatementBegin
CREATE FUNCTION backoffice_queue_site_request(p_tenant bigint, p_request bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p_request IS NULL OR p_request < 1 THEN
        RAISE EXCEPTION 'backoffice_queue_site_request: request id is required' USING ERRCODE = '22023';
    END IF;
    PERFORM FROM tenants WHERE id = p_tenant AND status IN ('active', 'suspended');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'backoffice_queue_site_request: tenant % is not serving', p_tenant USING ERRCODE = 'P0002';
    END IF;
    -- Queuing a request again (a back office retrying) changes nothing.
    INSERT INTO site_deploy_queue (tenant_id, request_id) VALUES (p_tenant, p_request) ON CONFLICT DO NOTHING;
    PERFORM pg_notify('site_deploy_queue', p_tenant::text);
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION backoffice_queue_site_request(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backoffice_queue_site_request(bigint, bigint) TO swa_dataplane;

-- +goose Down
DROP FUNCTION backoffice_queue_site_request(bigint, bigint);
DROP TABLE site_deploy_queue;
