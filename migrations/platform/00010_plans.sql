-- +goose Up
-- The platform's plans and their limits. A NULL limit is unlimited.
-- tenants.plan now references a plan; tenants created before plans existed
-- are on 'standard', kept as a plan without limits so they keep working
-- exactly as before. Sign-ups start on 'free'. The data plane reads the
-- limits (the directory carries each tenant's) to enforce them where the
-- usage happens.
CREATE TABLE plans (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    monthly_price_cents bigint NOT NULL DEFAULT 0 CHECK (monthly_price_cents >= 0),
    listed           boolean NOT NULL DEFAULT true, -- shown on the pricing page
    products         bigint CHECK (products >= 0),
    staff_seats      bigint CHECK (staff_seats >= 0),
    orders_per_month bigint CHECK (orders_per_month >= 0),
    events_per_month bigint CHECK (events_per_month >= 0),
    emails_per_month bigint CHECK (emails_per_month >= 0),
    custom_domains   bigint CHECK (custom_domains >= 0),
    storage_bytes    bigint CHECK (storage_bytes >= 0),
    sort_order       int NOT NULL DEFAULT 0
);

INSERT INTO plans (name, display_name, monthly_price_cents, listed, products, staff_seats, orders_per_month,
                   events_per_month, emails_per_month, custom_domains, storage_bytes, sort_order) VALUES
    ('free',     'Free',     0,    true,  10,   1,    100,   10000,   1000,   0,    104857600,   1),
    ('pro',      'Pro',      2900, true,  1000, 5,    5000,  1000000, 50000,  1,    5368709120,  2),
    ('business', 'Business', 9900, true,  NULL, 25,   NULL,  20000000, 500000, 10,  53687091200, 3),
    ('standard', 'Standard', 0,    false, NULL, NULL, NULL,  NULL,    NULL,   NULL, NULL,        4);

-- Any tenant on a plan name that is not defined keeps serving unlimited.
UPDATE tenants SET plan = 'standard' WHERE plan NOT IN (SELECT name FROM plans);
ALTER TABLE tenants ADD CONSTRAINT tenants_plan_fkey FOREIGN KEY (plan) REFERENCES plans (name);

-- A plan's limits changing touches its tenants (a new generation), whose
-- trigger wakes every replica's directory.
-- +goose StatementBegin
CREATE FUNCTION notify_plan_changed() RETURNS trigger AS $$
BEGIN
    UPDATE tenants SET updated_at = clock_timestamp() WHERE plan = NEW.name;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER plans_changed AFTER UPDATE ON plans
    FOR EACH ROW EXECUTE FUNCTION notify_plan_changed();

GRANT SELECT ON plans TO swa_dataplane;

-- +goose Down
REVOKE SELECT ON plans FROM swa_dataplane;
DROP TRIGGER plans_changed ON plans;
DROP FUNCTION notify_plan_changed();
ALTER TABLE tenants DROP CONSTRAINT tenants_plan_fkey;
DROP TABLE plans;
