-- +goose Up
-- A tenant's owner adds a custom domain in the back office. It is stored
-- pending, with a random token the owner publishes as a DNS TXT record
-- (_swa-challenge.<hostname> TXT "swa-verify=<token>"); the control plane's
-- checker resolves that record and marks the domain verified. Only verified
-- domains route (the data plane's directory reads status). The checker
-- re-checks verified domains with a token too: one whose record is missing
-- on several consecutive checks goes back to pending, and stops routing.
-- Domains without a token (the default {slug}.{base} domain and those an
-- operator added through the control plane, which operators vouch for) are
-- verified and never checked.
ALTER TABLE domains
    ADD COLUMN status        text NOT NULL DEFAULT 'verified' CHECK (status IN ('pending', 'verified')),
    ADD COLUMN token         text CHECK (token ~ '^[A-Za-z0-9_-]{20,100}$'),
    ADD COLUMN added_by      text,
    -- When the checker next looks at the record (NULL: never checked);
    -- claiming a domain moves it one interval ahead, a lease among replicas.
    ADD COLUMN next_check_at timestamptz,
    ADD COLUMN checked_at    timestamptz,
    ADD COLUMN check_error   text,
    -- Consecutive checks that found no record (an inconclusive check, such
    -- as a resolver timeout, does not count).
    ADD COLUMN misses        integer NOT NULL DEFAULT 0 CHECK (misses >= 0),
    ADD COLUMN verified_at   timestamptz,
    ADD CONSTRAINT domains_token_checked CHECK ((token IS NULL) = (next_check_at IS NULL));
CREATE INDEX domains_next_check_idx ON domains (next_check_at) WHERE next_check_at IS NOT NULL;

-- A check records its time and outcome on every run: only a change that
-- matters for routing wakes the replicas' directories.
DROP TRIGGER domains_changed ON domains;
CREATE TRIGGER domains_changed AFTER INSERT OR DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();
CREATE TRIGGER domains_routing_changed AFTER UPDATE ON domains
    FOR EACH ROW WHEN ((OLD.hostname, OLD.tenant_id, OLD.is_default, OLD.status)
                       IS DISTINCT FROM (NEW.hostname, NEW.tenant_id, NEW.is_default, NEW.status))
    EXECUTE FUNCTION notify_tenant_changed();

-- The data plane's one write for adding a domain: a pending domain of one
-- serving tenant, within its plan's custom_domains, never under the
-- platform's base domain (whose names are the tenants' own subdomains).
-- Adding a hostname the tenant already has changes nothing; one another
-- tenant has is a unique violation. Audited in the same transaction.
-- +goose StatementBegin
CREATE FUNCTION backoffice_add_domain(p_tenant bigint, p_actor text, p_hostname text, p_token text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    t_slug   text;
    t_limit  bigint;
    base     text;
    used     bigint;
    owner_id bigint;
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

    SELECT tenant_id INTO owner_id FROM domains WHERE hostname = p_hostname;
    IF owner_id = p_tenant THEN
        RETURN;
    END IF;
    SELECT count(*) INTO used FROM domains WHERE tenant_id = p_tenant AND NOT is_default;
    IF t_limit IS NOT NULL AND used >= t_limit THEN
        RAISE EXCEPTION 'backoffice_add_domain: the plan allows % custom domains', t_limit USING ERRCODE = '54000';
    END IF;
    -- A hostname another tenant holds fails here with 23505.
    INSERT INTO domains (hostname, tenant_id, status, token, added_by, next_check_at)
    VALUES (p_hostname, p_tenant, 'pending', p_token, p_actor, now());
    INSERT INTO audit_log (actor, action, tenant_id, after)
    VALUES (p_actor, 'domain.added_in_back_office', p_tenant,
            jsonb_build_object('hostname', p_hostname, 'status', 'pending'));
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION backoffice_add_domain(bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backoffice_add_domain(bigint, text, text, text) TO swa_dataplane;

-- Removing a domain in the back office: never the default domain nor the
-- one the tenant's own site is served on (55000); false when the tenant has
-- no such domain. The delete wakes every replica's directory at commit.
-- +goose StatementBegin
CREATE FUNCTION backoffice_remove_domain(p_tenant bigint, p_actor text, p_hostname text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    d domains%ROWTYPE;
BEGIN
    IF p_actor IS NULL OR p_actor = '' THEN
        RAISE EXCEPTION 'backoffice_remove_domain: actor is required' USING ERRCODE = '22023';
    END IF;
    PERFORM FROM tenants WHERE id = p_tenant AND status IN ('active', 'suspended') FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'backoffice_remove_domain: tenant % is not serving', p_tenant USING ERRCODE = 'P0002';
    END IF;
    SELECT * INTO d FROM domains WHERE hostname = p_hostname AND tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF d.is_default THEN
        RAISE EXCEPTION 'backoffice_remove_domain: % is the default domain', p_hostname USING ERRCODE = '55000';
    END IF;
    IF EXISTS (SELECT FROM sites WHERE tenant_id = p_tenant AND mode = 'domain' AND domain = p_hostname) THEN
        RAISE EXCEPTION 'backoffice_remove_domain: % serves the tenant''s site', p_hostname USING ERRCODE = '55000';
    END IF;
    DELETE FROM domains WHERE hostname = p_hostname AND tenant_id = p_tenant;
    UPDATE tenants SET updated_at = now() WHERE id = p_tenant;
    INSERT INTO audit_log (actor, action, tenant_id, before)
    VALUES (p_actor, 'domain.removed_in_back_office', p_tenant,
            jsonb_build_object('hostname', d.hostname, 'status', d.status));
    RETURN true;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION backoffice_remove_domain(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backoffice_remove_domain(bigint, text, text) TO swa_dataplane;

-- +goose Down
DROP FUNCTION backoffice_remove_domain(bigint, text, text);
DROP FUNCTION backoffice_add_domain(bigint, text, text, text);
DROP TRIGGER domains_routing_changed ON domains;
DROP TRIGGER domains_changed ON domains;
CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();
DELETE FROM domains WHERE status = 'pending';
ALTER TABLE domains
    DROP CONSTRAINT domains_token_checked,
    DROP COLUMN verified_at, DROP COLUMN misses, DROP COLUMN check_error, DROP COLUMN checked_at,
    DROP COLUMN next_check_at, DROP COLUMN added_by, DROP COLUMN token, DROP COLUMN status;
