-- +goose Up
-- Quotas the data plane never refuses (an order is paid for when it is
-- recorded) are flagged instead: one row per tenant, quota and UTC month in
-- which the tenant went past its plan's limit, with the plan and limit of
-- that moment. Operators read it (GET /v1/tenants/{slug}/quota) and the
-- tenant's back office shows a notice. The data plane's role may read the
-- rows of the registry; dataplane_flag_quota, which runs as the registry's
-- owner, is the one write it makes here, and flagging again changes nothing.
CREATE TABLE quota_flags (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    quota       text NOT NULL CHECK (quota IN ('orders_per_month')),
    month       date NOT NULL CHECK (extract(day FROM month) = 1),
    plan        text NOT NULL,
    quota_limit bigint NOT NULL CHECK (quota_limit >= 0),
    flagged_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, quota, month)
);

GRANT SELECT ON quota_flags TO swa_dataplane;

-- +goose StatementBegin
CREATE FUNCTION dataplane_flag_quota(p_tenant bigint, p_quota text, p_month date)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_plan  text;
    v_limit bigint;
BEGIN
    IF p_quota IS DISTINCT FROM 'orders_per_month' THEN
        RAISE EXCEPTION 'dataplane_flag_quota: unknown quota %', p_quota USING ERRCODE = '22023';
    END IF;
    IF p_month IS NULL OR extract(day FROM p_month) <> 1 THEN
        RAISE EXCEPTION 'dataplane_flag_quota: month must be the first day of a month' USING ERRCODE = '22023';
    END IF;
    SELECT t.plan, p.orders_per_month INTO v_plan, v_limit
      FROM tenants t JOIN plans p ON p.name = t.plan
     WHERE t.id = p_tenant AND t.status IN ('active', 'suspended');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataplane_flag_quota: tenant % is not serving', p_tenant USING ERRCODE = 'P0002';
    END IF;
    IF v_limit IS NULL THEN
        RETURN false; -- the plan has no such limit (any more)
    END IF;
    INSERT INTO quota_flags (tenant_id, quota, month, plan, quota_limit)
    VALUES (p_tenant, p_quota, p_month, v_plan, v_limit) ON CONFLICT DO NOTHING;
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION dataplane_flag_quota(bigint, text, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataplane_flag_quota(bigint, text, date) TO swa_dataplane;

-- +goose Down
DROP FUNCTION dataplane_flag_quota(bigint, text, date);
DROP TABLE quota_flags;
