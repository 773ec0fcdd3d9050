-- +goose Up
-- Usage metering (platform/usage): per tenant and UTC hour, what its
-- visitors and staff used. Every data-plane replica counts in memory and
-- adds its counts every few seconds through usage_record_flush, the one
-- write its read-only role may make here; the control plane samples the
-- gauges (database size, site storage) into the same rows.
CREATE TABLE usage_hourly (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The start of the UTC hour.
    hour          timestamptz NOT NULL CHECK (extract(epoch FROM hour)::bigint % 3600 = 0),
    requests      bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    orders        bigint NOT NULL DEFAULT 0 CHECK (orders >= 0),
    client_events bigint NOT NULL DEFAULT 0 CHECK (client_events >= 0),
    emails_sent   bigint NOT NULL DEFAULT 0 CHECK (emails_sent >= 0),
    -- Gauges: the last sample taken in the hour; NULL until one is.
    db_bytes      bigint CHECK (db_bytes >= 0),
    site_bytes    bigint CHECK (site_bytes >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, hour)
);
CREATE INDEX usage_hourly_hour_idx ON usage_hourly (hour);

-- Revenue of the hour's orders per currency (ISO 4217, lower case, as
-- Stripe writes it); '' holds the orders that carry no currency.
CREATE TABLE usage_revenue_hourly (
    tenant_id     bigint NOT NULL,
    hour          timestamptz NOT NULL,
    currency      text NOT NULL CHECK (currency = '' OR currency ~ '^[a-z]{3}$'),
    orders        bigint NOT NULL DEFAULT 0 CHECK (orders >= 0),
    revenue_cents bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, currency),
    FOREIGN KEY (tenant_id, hour) REFERENCES usage_hourly (tenant_id, hour) ON DELETE CASCADE
);

-- One row per flush applied: (replica, seq) is a replica process's flush
-- number. A flush retried after its commit went unacknowledged finds its
-- row and adds nothing. The control plane prunes old rows (a replica
-- retries only its own last flush, within seconds).
CREATE TABLE usage_flushes (
    replica    text NOT NULL CHECK (length(replica) BETWEEN 1 AND 100),
    seq        bigint NOT NULL CHECK (seq > 0),
    flushed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, seq)
);
CREATE INDEX usage_flushes_flushed_at_idx ON usage_flushes (flushed_at);

-- usage_record_flush adds one flush's counts, given as a JSON array of
-- {"tenant", "hour", "requests", "orders", "client_events", "emails_sent",
-- "revenue": {currency: {"orders", "cents"}}}, unless (p_replica, p_seq)
-- was applied before. It returns whether it added them. The flush row and
-- the additions commit together, so a flush counts once or not at all.
-- Counts of tenants deleted since are skipped.
-- +goose StatementBegin
CREATE FUNCTION usage_record_flush(p_replica text, p_seq bigint, p_rows jsonb)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p_replica IS NULL OR length(p_replica) NOT BETWEEN 1 AND 100 OR p_seq IS NULL OR p_seq < 1 THEN
        RAISE EXCEPTION 'usage_record_flush: replica (1 to 100 characters) and a positive sequence are required' USING ERRCODE = '22023';
    END IF;
    IF p_rows IS NULL OR jsonb_typeof(p_rows) <> 'array' THEN
        RAISE EXCEPTION 'usage_record_flush: rows must be a JSON array' USING ERRCODE = '22023';
    END IF;
    INSERT INTO usage_flushes (replica, seq) VALUES (p_replica, p_seq) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    INSERT INTO usage_hourly AS u (tenant_id, hour, requests, orders, client_events, emails_sent)
    SELECT r.tenant, date_trunc('hour', r.hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           sum(coalesce(r.requests, 0)), sum(coalesce(r.orders, 0)),
           sum(coalesce(r.client_events, 0)), sum(coalesce(r.emails_sent, 0))
      FROM jsonb_to_recordset(p_rows) AS r(tenant bigint, hour timestamptz, requests bigint, orders bigint,
                                          client_events bigint, emails_sent bigint)
     WHERE EXISTS (SELECT FROM tenants t WHERE t.id = r.tenant)
     GROUP BY 1, 2
     ORDER BY 1, 2
    ON CONFLICT (tenant_id, hour) DO UPDATE
       SET requests = u.requests + excluded.requests,
           orders = u.orders + excluded.orders,
           client_events = u.client_events + excluded.client_events,
           emails_sent = u.emails_sent + excluded.emails_sent,
           updated_at = now();

    INSERT INTO usage_revenue_hourly AS v (tenant_id, hour, currency, orders, revenue_cents)
    SELECT r.tenant, date_trunc('hour', r.hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', c.key,
           sum(coalesce((c.value ->> 'orders')::bigint, 0)), sum(coalesce((c.value ->> 'cents')::bigint, 0))
      FROM jsonb_to_recordset(p_rows) AS r(tenant bigint, hour timestamptz, revenue jsonb)
     CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(r.revenue) = 'object' THEN r.revenue ELSE '{}'::jsonb END) AS c
     WHERE EXISTS (SELECT FROM tenants t WHERE t.id = r.tenant)
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, hour, currency) DO UPDATE
       SET orders = v.orders + excluded.orders,
           revenue_cents = v.revenue_cents + excluded.revenue_cents;
    RETURN true;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION usage_record_flush(text, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION usage_record_flush(text, bigint, jsonb) TO swa_dataplane;

-- +goose Down
DROP FUNCTION usage_record_flush(text, bigint, jsonb);
DROP TABLE usage_flushes;
DROP TABLE usage_revenue_hourly;
DROP TABLE usage_hourly;
