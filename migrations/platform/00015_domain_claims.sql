-- +goose Up
-- A pending domain is a claim, not a hold: several shops may claim the same
-- hostname, and the one whose TXT record the domain serves verifies it.
-- Until now a pending claim kept the hostname from every other shop for as
-- long as it existed, so anyone could squat a name they do not control.
-- Only a verified hostname (one that routes) is unique; a claim that never
-- verifies expires (the control plane's checker removes it).
ALTER TABLE domains DROP CONSTRAINT domains_pkey;
ALTER TABLE domains ADD PRIMARY KEY (hostname, tenant_id);
CREATE UNIQUE INDEX domains_routed_hostname_idx ON domains (hostname) WHERE status = 'verified';

-- As in 00013, except for who holds the name: a hostname another shop has
-- verified is refused (23505); one it has only claimed is not.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION backoffice_add_domain(p_tenant bigint, p_actor text, p_hostname text, p_token text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    t_slug   text;
    t_limit  bigint;
    base     text;
    used     bigint;
BEGIN
    IF p_actor IS NULL OR p_actor = '' THEN
        RAISE EXCEPTION 'backoffice_add_domain: actor is required' USING ERRCODE = '22023';
    END IF;
    IF p_hostname IS NULL OR length(p_hostname) > 253
       OR p_hostname !~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
       OR p_hostname ~ '\.[0-9]+$' THEN
        RAISE EXCEPTION 'backoffice_add_domain: % is not a DNS name', p_hostname USING ERRCODE = '22023';
    END IF;
    IF p_token IS NULL OR p_token !~ '^[A-Za-z0-9_-]{20,100}$' THEN
        RAISE EXCEPTION 'backoffice_add_domain: a token of 20 to 100 URL-safe characters is required' USING ERRCODE = '22023';
    END IF;

    SELECT t.slug, p.custom_domains INTO t_slug, t_limit
      FROM tenants t LEFT JOIN plans p ON p.name = t.plan
     WHERE t.id = p_tenant AND t.status IN ('active', 'suspended') FOR UPDATE OF t;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'backoffice_add_domain: tenant % is not serving', p_tenant USING ERRCODE = 'P0002';
    END IF;
    -- The default domain is {slug}.{base}: what follows the slug is the base.
    SELECT substr(hostname, length(t_slug) + 2) INTO base FROM domains
     WHERE tenant_id = p_tenant AND is_default AND starts_with(hostname, t_slug || '.');
    IF base IS NOT NULL AND (p_hostname = base OR right(p_hostname, length(base) + 1) = '.' || base) THEN
        RAISE EXCEPTION 'backoffice_add_domain: % is under the platform domain %', p_hostname, base USING ERRCODE = '22023';
    END IF;

    IF EXISTS (SELECT FROM domains WHERE hostname = p_hostname AND tenant_id = p_tenant) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM domains WHERE hostname = p_hostname AND status = 'verified') THEN
        RAISE EXCEPTION 'backoffice_add_domain: % is verified by another tenant', p_hostname USING ERRCODE = '23505';
    END IF;
    SELECT count(*) INTO used FROM domains WHERE tenant_id = p_tenant AND NOT is_default;
    IF t_limit IS NOT NULL AND used >= t_limit THEN
        RAISE EXCEPTION 'backoffice_add_domain: the plan allows % custom domains', t_limit USING ERRCODE = '54000';
    END IF;
    INSERT INTO domains (hostname, tenant_id, status, token, added_by, next_check_at)
    VALUES (p_hostname, p_tenant, 'pending', p_token, p_actor, now());
    INSERT INTO audit_log (actor, action, tenant_id, after)
    VALUES (p_actor, 'domain.added_in_back_office', p_tenant,
            jsonb_build_object('hostname', p_hostname, 'status', 'pending'));
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- Back to one row per hostname: where several shops claimed one, the
-- verified row stays, else the oldest claim. The function above stays: with
-- the hostname the key again, another shop's claim fails its INSERT with
-- 23505, as under 00013.
DELETE FROM domains d USING domains keep
 WHERE d.hostname = keep.hostname AND d.tenant_id <> keep.tenant_id
   AND (keep.status = 'verified' AND d.status <> 'verified'
        OR keep.status = d.status AND (keep.created_at, keep.tenant_id) < (d.created_at, d.tenant_id));
DROP INDEX domains_routed_hostname_idx;
ALTER TABLE domains DROP CONSTRAINT domains_pkey;
ALTER TABLE domains ADD PRIMARY KEY (hostname);
