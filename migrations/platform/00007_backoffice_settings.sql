-- +goose Up
-- A tenant's owners edit their shop's own settings in its back office: the
-- shop name, the contact details and look of the built-in storefront, and
-- the frontend origin (mail links, Stripe redirects, and the origin the
-- tenant trusts for CORS). The data plane's role may not write the
-- registry; this function, which runs as the registry's owner, is the one
-- write it may make, and only to these keys of one serving tenant. Rate
-- limits, the cookie domain, the sender address, domains and everything
-- else stay the control plane's. Each call is audited in the same
-- transaction, and the tenants trigger wakes every replica's directory.
-- +goose StatementBegin
CREATE FUNCTION backoffice_update_settings(p_tenant bigint, p_actor text, p_display_name text,
                                           p_frontend_origin text, p_branding jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    editable CONSTANT text[] := ARRAY['shop_name', 'tagline', 'logo_url', 'primary_color', 'accent_color',
                                      'contact_email', 'contact_phone'];
    old_name     text;
    old_settings jsonb;
    old_origin   text;
    new_settings jsonb;
    brand        jsonb;
BEGIN
    IF p_actor IS NULL OR p_actor = '' THEN
        RAISE EXCEPTION 'backoffice_update_settings: actor is required' USING ERRCODE = '22023';
    END IF;
    IF p_display_name IS NULL OR length(btrim(p_display_name)) = 0 OR length(p_display_name) > 200 THEN
        RAISE EXCEPTION 'backoffice_update_settings: display name must be 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    IF coalesce(p_frontend_origin, '') <> '' AND p_frontend_origin !~ '^https?://[a-z0-9.-]+(:[0-9]{1,5})?$' THEN
        RAISE EXCEPTION 'backoffice_update_settings: frontend origin must be scheme://host[:port]' USING ERRCODE = '22023';
    END IF;
    IF p_branding IS NULL OR jsonb_typeof(p_branding) <> 'object' OR EXISTS (
        SELECT FROM jsonb_each(p_branding) e WHERE NOT (e.key = ANY (editable)) OR jsonb_typeof(e.value) <> 'string') THEN
        RAISE EXCEPTION 'backoffice_update_settings: branding may hold only strings under %', editable USING ERRCODE = '22023';
    END IF;

    SELECT display_name, settings INTO old_name, old_settings
      FROM tenants WHERE id = p_tenant AND status IN ('active', 'suspended') FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'backoffice_update_settings: tenant % is not serving', p_tenant USING ERRCODE = 'P0002';
    END IF;
    old_origin := old_settings ->> 'frontend_origin';

    -- The editable keys are replaced as a set (an empty string clears one);
    -- the rest of the branding (legal texts, footer links) is kept.
    brand := (coalesce(old_settings -> 'branding', '{}'::jsonb) - editable)
             || coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(p_branding) e WHERE e.value <> '""'::jsonb),
                         '{}'::jsonb);
    new_settings := old_settings - 'branding' - 'frontend_origin';
    IF brand <> '{}'::jsonb THEN
        new_settings := new_settings || jsonb_build_object('branding', brand);
    END IF;
    IF coalesce(p_frontend_origin, '') <> '' THEN
        new_settings := new_settings || jsonb_build_object('frontend_origin', p_frontend_origin);
    END IF;

    UPDATE tenants SET display_name = p_display_name, settings = new_settings, updated_at = now() WHERE id = p_tenant;
    -- The frontend calls the API with credentials: its origin is trusted,
    -- and the one it replaces no longer is.
    IF old_origin IS DISTINCT FROM nullif(p_frontend_origin, '') THEN
        IF old_origin IS NOT NULL THEN
            DELETE FROM tenant_origins WHERE tenant_id = p_tenant AND origin = old_origin;
        END IF;
        IF coalesce(p_frontend_origin, '') <> '' THEN
            INSERT INTO tenant_origins (tenant_id, origin) VALUES (p_tenant, p_frontend_origin) ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    INSERT INTO audit_log (actor, action, tenant_id, before, after)
    VALUES (p_actor, 'tenant.settings_changed_in_back_office', p_tenant,
            jsonb_build_object('display_name', old_name, 'frontend_origin', old_origin, 'branding', old_settings -> 'branding'),
            jsonb_build_object('display_name', p_display_name, 'frontend_origin', nullif(p_frontend_origin, ''),
                               'branding', new_settings -> 'branding'));
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION backoffice_update_settings(bigint, text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backoffice_update_settings(bigint, text, text, text, jsonb) TO swa_dataplane;

-- +goose Down
DROP FUNCTION backoffice_update_settings(bigint, text, text, text, jsonb);
