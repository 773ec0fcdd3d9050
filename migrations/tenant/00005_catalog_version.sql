-- +goose Up
-- A number that changes with every write to the catalogue, whoever makes it
-- (the back office, an import, a migration, an operator's SQL): the data
-- plane keeps the catalogue's answers in memory and asks only this one row
-- whether they still hold. Statement-level triggers, so a bulk write bumps
-- it once.
CREATE TABLE catalog_version (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL DEFAULT 1
);
INSERT INTO catalog_version DEFAULT VALUES;

-- +goose StatementBegin
CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET version = version + 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER catalog_version_product AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON product
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER catalog_version_product_image AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON product_image
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER catalog_version_product_video AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON product_video
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER catalog_version_product_sku AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON product_sku
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER catalog_version_sku AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sku
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER catalog_version_sku_price AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sku_price
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER catalog_version_sku_image AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sku_image
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER catalog_version_sku_inventory AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sku_inventory
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();

-- +goose Down
DROP TRIGGER catalog_version_product ON product;
DROP TRIGGER catalog_version_product_image ON product_image;
DROP TRIGGER catalog_version_product_video ON product_video;
DROP TRIGGER catalog_version_product_sku ON product_sku;
DROP TRIGGER catalog_version_sku ON sku;
DROP TRIGGER catalog_version_sku_price ON sku_price;
DROP TRIGGER catalog_version_sku_image ON sku_image;
DROP TRIGGER catalog_version_sku_inventory ON sku_inventory;
DROP FUNCTION bump_catalog_version();
DROP TABLE catalog_version;
