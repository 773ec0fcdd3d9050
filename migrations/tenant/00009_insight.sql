-- +goose Up
-- The back office's insight dashboard reads rollups, not the event tables,
-- so its queries stay fast on millions of events. The analytics batch
-- writer maintains them in the transaction that inserts the events (one
-- statement per kind), so they never disagree with the events after a
-- crash; insight_rebuild() recomputes them from the event tables (this
-- migration runs it, and the importer after copying a fork's events).
--
-- insight_daily holds counts per UTC day: metric pageview (key the page's
-- path), button_click (key the button id), ajax_error (key the path and
-- the error id, "path error"), link_member, link_prospect, link_other (key
-- "email:<em_cd>", "ad:<ad_cd>" or "" for a link with neither), and
-- visitor (key "": the day's distinct visitors). insight_visitor is the
-- set of (day, visitor) seen, a visitor being a signed-in account or an
-- anonymous id, which keeps the daily count distinct across batches.
CREATE TABLE insight_daily (
    metric text NOT NULL CHECK (metric IN ('pageview', 'button_click', 'ajax_error', 'link_member', 'link_prospect',
                                           'link_other', 'visitor')),
    day    date NOT NULL,
    key    text NOT NULL,
    count  bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (metric, day, key)
);

CREATE TABLE insight_visitor (
    day     date NOT NULL,
    visitor text NOT NULL,
    PRIMARY KEY (day, visitor)
);

-- insight_path is a page URL's path, without scheme, host, query or
-- fragment, at most 200 characters ("/" when empty).
CREATE FUNCTION insight_path(url text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(coalesce(nullif(split_part(split_part(regexp_replace(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '?', 1), '#', 1), ''), '/'), 200)
$$;

-- insight_visitor_of names an event's visitor, NULL when it has none.
CREATE FUNCTION insight_visitor_of(account_id bigint, anonymous_id text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN account_id IS NOT NULL THEN 'a' || account_id WHEN coalesce(anonymous_id, '') <> '' THEN 'v' || anonymous_id END
$$;

-- +goose StatementBegin
CREATE FUNCTION insight_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- One rebuild at a time, and no batch writer in between (they take
    -- row locks on the rollups this lock conflicts with).
    LOCK TABLE insight_daily, insight_visitor IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM insight_daily;
    DELETE FROM insight_visitor;
    INSERT INTO insight_daily (metric, day, key, count)
    SELECT 'pageview', (created_date_time AT TIME ZONE 'UTC')::date, insight_path(url), count(*) FROM pageview GROUP BY 2, 3;
    INSERT INTO insight_daily (metric, day, key, count)
    SELECT 'button_click', (created_date_time AT TIME ZONE 'UTC')::date, left(button_id, 100), count(*) FROM button_click GROUP BY 2, 3;
    INSERT INTO insight_daily (metric, day, key, count)
    SELECT 'ajax_error', (created_date_time AT TIME ZONE 'UTC')::date, insight_path(url) || ' ' || left(error_id, 100), count(*)
      FROM ajax_error GROUP BY 2, 3;
    INSERT INTO insight_daily (metric, day, key, count)
    SELECT CASE WHEN l.account_id IS NOT NULL THEN 'link_member' WHEN l.prospect_id IS NOT NULL THEN 'link_prospect' ELSE 'link_other' END,
           (l.created_date_time AT TIME ZONE 'UTC')::date,
           CASE WHEN e.em_cd IS NOT NULL THEN 'email:' || e.em_cd WHEN d.ad_cd IS NOT NULL THEN 'ad:' || d.ad_cd ELSE '' END, count(*)
      FROM link_event l LEFT JOIN email e ON e.id = l.email_id LEFT JOIN ad d ON d.id = l.ad_id GROUP BY 1, 2, 3;
    INSERT INTO insight_visitor (day, visitor)
    SELECT DISTINCT (created_date_time AT TIME ZONE 'UTC')::date, insight_visitor_of(account_id, anonymous_id)
      FROM pageview WHERE insight_visitor_of(account_id, anonymous_id) IS NOT NULL;
    INSERT INTO insight_daily (metric, day, key, count)
    SELECT 'visitor', day, '', count(*) FROM insight_visitor GROUP BY day;
END;
$$;
-- +goose StatementEnd

SELECT insight_rebuild();

-- +goose Down
DROP FUNCTION insight_rebuild();
DROP FUNCTION insight_visitor_of(bigint, text);
DROP FUNCTION insight_path(text);
DROP TABLE insight_visitor, insight_daily;
