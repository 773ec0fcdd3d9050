-- +goose Up
-- A claim that never verifies is removed (00015), but its owner could not
-- see when: the expiry is the control plane's setting
-- (SWA_DOMAIN_CLAIM_EXPIRY), which the data plane does not know. The
-- checker now stores, on every check it records, the time it will remove
-- the claim: created_at plus its expiry while the claim has never
-- verified, NULL once it has (a verified domain never expires, even if it
-- goes back to pending). The back office and the control plane's API show
-- this one value, the one the checker acts on. A claim not checked yet has
-- none until its next check, which comes within the checker's interval.
ALTER TABLE domains ADD COLUMN expires_at timestamptz;
ALTER TABLE domains ADD CONSTRAINT domains_expiry_unverified CHECK (expires_at IS NULL OR verified_at IS NULL);

-- +goose Down
ALTER TABLE domains DROP COLUMN expires_at;
