-- +goose Up
-- A product taken off sale is archived, never deleted: orders, carts and
-- the audit log keep naming it, and restoring it puts it back as it was.
-- The shop lists and shows only products without archived_at; the
-- catalogue version trigger on product makes every replica follow.
ALTER TABLE product ADD COLUMN archived_at timestamptz;

-- +goose Down
ALTER TABLE product DROP COLUMN archived_at;
