-- +goose Up
-- The back office's staff identity (tenant/admin): two roles, owner and
-- staff; a staff member is deactivated rather than deleted, so the audit
-- log keeps naming them. Invitation, reset and API tokens are stored as
-- SHA-256 digests only; the TOTP secret is sealed with a key derived from the
-- tenant's secret key; recovery codes are digests, each usable once.
ALTER TABLE staff DROP CONSTRAINT staff_role_check;
-- The old middle role had no rights defined anywhere; least privilege.
UPDATE staff SET role = 'staff' WHERE role = 'admin';
ALTER TABLE staff ADD CONSTRAINT staff_role_check CHECK (role IN ('owner', 'staff'));
ALTER TABLE staff
    ADD COLUMN is_active      boolean NOT NULL DEFAULT true,
    -- Consecutive failed sign-ins; reset by a successful one or a reset.
    ADD COLUMN failed_logins  integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    ADD COLUMN locked_until   timestamptz,
    ADD COLUMN last_login     timestamptz,
    -- AES-256-GCM nonce || ciphertext of the base32 TOTP secret; set at
    -- enrolment, used once confirmed (totp_enabled).
    ADD COLUMN totp_secret    bytea,
    ADD COLUMN totp_enabled   boolean NOT NULL DEFAULT false,
    -- The last 30-second step a code was accepted for: a code is never
    -- accepted twice.
    ADD COLUMN totp_last_step bigint,
    ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now();

-- An invitation by e-mail: accepting it creates the staff member.
CREATE TABLE staff_invitation (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       varchar(254) NOT NULL CHECK (email <> ''),
    role        text NOT NULL CHECK (role IN ('owner', 'staff')),
    token_hash  bytea NOT NULL UNIQUE,
    invited_by  bigint REFERENCES staff (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX staff_invitation_email_idx ON staff_invitation (lower(email));

-- A password-reset link, usable once before it expires.
CREATE TABLE staff_password_reset (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id   bigint NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX staff_password_reset_staff_id_idx ON staff_password_reset (staff_id);

-- The second factor's recovery codes; a new set replaces the old one.
CREATE TABLE staff_recovery_code (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id  bigint NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    UNIQUE (staff_id, code_hash)
);

-- Bearer tokens for automation; a token acts as its staff member.
CREATE TABLE staff_token (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id     bigint NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    name         varchar(100) NOT NULL CHECK (name <> ''),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX staff_token_staff_id_idx ON staff_token (staff_id);

-- Every change made through the back office: who (the staff id and the
-- address at the time), what, on what, before and after (never a secret).
CREATE TABLE staff_audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id    bigint REFERENCES staff (id) ON DELETE SET NULL,
    actor       varchar(254) NOT NULL DEFAULT '',
    action      text NOT NULL CHECK (action <> ''),
    target_type text NOT NULL DEFAULT '',
    target_id   text NOT NULL DEFAULT '',
    before      jsonb,
    after       jsonb,
    client_ip   text NOT NULL DEFAULT '',
    request_id  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_audit_log_created_at_idx ON staff_audit_log (created_at);

-- +goose Down
DROP TABLE staff_audit_log, staff_token, staff_recovery_code, staff_password_reset, staff_invitation;
ALTER TABLE staff
    DROP COLUMN is_active, DROP COLUMN failed_logins, DROP COLUMN locked_until, DROP COLUMN last_login,
    DROP COLUMN totp_secret, DROP COLUMN totp_enabled, DROP COLUMN totp_last_step, DROP COLUMN updated_at;
ALTER TABLE staff DROP CONSTRAINT staff_role_check;
ALTER TABLE staff ADD CONSTRAINT staff_role_check CHECK (role IN ('owner', 'admin', 'staff'));
