-- +goose Up
-- Founders: the people who signed up, with an account of their own on the
-- platform site (not in any shop), and the platform's billing of their
-- shops through its own Stripe account.
--
-- A founder account is made from a sign-up's password hash when its shop
-- goes live; founder_tenants says which shops a founder may manage from the
-- platform site. The founder is also the owner in each shop's back office,
-- but the two accounts are separate.
CREATE TABLE founders (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz
);
CREATE UNIQUE INDEX founders_email_idx ON founders (lower(email));

CREATE TABLE founder_tenants (
    founder_id bigint NOT NULL REFERENCES founders (id) ON DELETE CASCADE,
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (founder_id, tenant_id)
);
CREATE INDEX founder_tenants_tenant_idx ON founder_tenants (tenant_id);

-- Founders of shops that went live before founder accounts existed.
INSERT INTO founders (email, password_hash)
SELECT DISTINCT ON (lower(email)) email, password_hash FROM signups
WHERE status = 'active' ORDER BY lower(email), id;
INSERT INTO founder_tenants (founder_id, tenant_id)
SELECT f.id, s.tenant_id FROM signups s JOIN founders f ON lower(f.email) = lower(s.email)
WHERE s.status = 'active' AND s.tenant_id IS NOT NULL
ON CONFLICT DO NOTHING;

-- One Stripe customer of the platform's account per founder.
CREATE TABLE billing_customers (
    founder_id         bigint PRIMARY KEY REFERENCES founders (id) ON DELETE CASCADE,
    stripe_customer_id text NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- The Stripe price of each paid plan at its current monthly price.
CREATE TABLE billing_prices (
    plan                text NOT NULL REFERENCES plans (name) ON UPDATE CASCADE,
    monthly_price_cents bigint NOT NULL CHECK (monthly_price_cents > 0),
    stripe_price_id     text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan, monthly_price_cents)
);

-- One subscription per tenant, as the webhook last reported it. event_at
-- is the Stripe creation time of the newest event applied: an older event
-- delivered late changes nothing.
CREATE TABLE billing_subscriptions (
    tenant_id              bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    founder_id             bigint NOT NULL REFERENCES founders (id) ON DELETE CASCADE,
    stripe_subscription_id text NOT NULL UNIQUE,
    plan                   text NOT NULL REFERENCES plans (name) ON UPDATE CASCADE,
    status                 text NOT NULL,
    event_at               timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Every webhook event of the platform's Stripe account, recorded by id in
-- the transaction that applies it: a redelivered event changes nothing.
CREATE TABLE billing_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    tenant_id   bigint REFERENCES tenants (id) ON DELETE SET NULL,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE billing_events;
DROP TABLE billing_subscriptions;
DROP TABLE billing_prices;
DROP TABLE billing_customers;
DROP TABLE founder_tenants;
DROP TABLE founders;
