package shop

import (
	"fmt"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// productsSQL lists the products on sale (not archived in the back office)
// in display order, then id order, with the
// min/max current price of their SKUs and their main image.
const productsSQL = `
SELECT p.title, p.title_url, p.identifier, p.headline, p.description_part_1, p.description_part_2,
       pr.low, pr.high,
       (SELECT image_url FROM product_image WHERE product_id = p.id AND main_image ORDER BY id LIMIT 1)
FROM product p
LEFT JOIN LATERAL (
  SELECT min(cur.price) AS low, max(cur.price) AS high
  FROM product_sku ps
  CROSS JOIN LATERAL (
    SELECT price FROM sku_price WHERE sku_id = ps.sku_id ORDER BY created_date_time DESC, id DESC LIMIT 1
  ) cur
  WHERE ps.product_id = p.id
) pr ON true
WHERE p.archived_at IS NULL
ORDER BY p.display_order, p.id`

// O1 GET /order/products.
func (a *App) products(c *fiber.Ctx) error {
	return a.catalogAnswer(c, "products", func(rq *request) (object, error) {
		rows, err := rq.conn.Query(rq.ctx, productsSQL)
		if err != nil {
			return nil, fmt.Errorf("products: %w", err)
		}
		defer rows.Close()
		var list object
		for rows.Next() {
			var title, titleURL, ident string
			var headline, d1, d2, image *string
			var low, high decimal.NullDecimal
			if err := rows.Scan(&title, &titleURL, &ident, &headline, &d1, &d2, &low, &high, &image); err != nil {
				return nil, fmt.Errorf("products: %w", err)
			}
			list = append(list, kv{ident, object{
				{"title", title}, {"title_url", titleURL}, {"identifier", ident},
				{"headline", headline}, {"description_part_1", d1}, {"description_part_2", d2},
				{"price_low", nullMoney(low)}, {"price_high", nullMoney(high)},
				{"product_image_url", image},
			}})
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("products: %w", err)
		}
		if list == nil {
			list = object{}
		}
		return object{{"products_data", list}}, nil
	})
}

func nullMoney(d decimal.NullDecimal) any {
	if !d.Valid {
		return nil
	}
	return money(d.Decimal)
}

const productSQL = `SELECT id, title, title_url, identifier, headline, description_part_1, description_part_2
FROM product WHERE identifier = $1 AND archived_at IS NULL`

const productImagesSQL = `SELECT id, image_url, main_image, caption FROM product_image WHERE product_id = $1 ORDER BY id`

const productVideosSQL = `SELECT id, video_url, video_thumbnail_url, caption FROM product_video WHERE product_id = $1 ORDER BY id`

const productSKUsSQL = `
SELECT s.id, s.color, s.size, s.description, cur.price, si.identifier, si.title, si.description
FROM product_sku ps
JOIN sku s ON s.id = ps.sku_id
JOIN sku_inventory si ON si.id = s.sku_inventory_id
LEFT JOIN LATERAL (
  SELECT price FROM sku_price WHERE sku_id = s.id ORDER BY created_date_time DESC, id DESC LIMIT 1
) cur ON true
WHERE ps.product_id = $1
ORDER BY s.id`

const skuImagesSQL = `SELECT si.sku_id, si.id, si.image_url, si.main_image, si.caption
FROM sku_image si JOIN product_sku ps ON ps.sku_id = si.sku_id
WHERE ps.product_id = $1 ORDER BY si.sku_id, si.id`

// O2 GET /order/product/<identifier>.
func (a *App) product(c *fiber.Ctx, ident string) error {
	notFound := func() (object, error) {
		return object{{"product", "error"}, {"errors", object{{"error", "product-identifier-not-found"}}}, {"product_identifier", ident}}, nil
	}
	return a.catalogAnswer(c, "product/"+ident, func(rq *request) (object, error) {
		var id int64
		var title, titleURL, pident string
		var headline, d1, d2 *string
		err := rq.conn.QueryRow(rq.ctx, productSQL, ident).Scan(&id, &title, &titleURL, &pident, &headline, &d1, &d2)
		if err == pgx.ErrNoRows {
			return notFound()
		}
		if err != nil {
			return nil, fmt.Errorf("product: %w", err)
		}
		images, err := imageObjects(rq, productImagesSQL, id)
		if err != nil {
			return nil, err
		}
		videos := object{}
		rows, err := rq.conn.Query(rq.ctx, productVideosSQL, id)
		if err != nil {
			return nil, fmt.Errorf("product videos: %w", err)
		}
		var vid int64
		var vurl, thumb string
		var caption *string
		_, err = pgx.ForEachRow(rows, []any{&vid, &vurl, &thumb, &caption}, func() error {
			videos = append(videos, kv{fmt.Sprint(vid), object{{"video_url", vurl}, {"video_thumbnail_url", thumb}, {"caption", caption}}})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("product videos: %w", err)
		}
		skuImages := map[int64]object{}
		rows, err = rq.conn.Query(rq.ctx, skuImagesSQL, id)
		if err != nil {
			return nil, fmt.Errorf("sku images: %w", err)
		}
		var skuID, imgID int64
		var url string
		var main bool
		_, err = pgx.ForEachRow(rows, []any{&skuID, &imgID, &url, &main, &caption}, func() error {
			skuImages[skuID] = append(skuImages[skuID], kv{fmt.Sprint(imgID), object{{"image_url", url}, {"main", main}, {"caption", caption}}})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sku images: %w", err)
		}
		skus := object{}
		rows, err = rq.conn.Query(rq.ctx, productSKUsSQL, id)
		if err != nil {
			return nil, fmt.Errorf("product skus: %w", err)
		}
		var color, size, desc, invDesc *string
		var price decimal.NullDecimal
		var invIdent, invTitle string
		missingPrice := false
		_, err = pgx.ForEachRow(rows, []any{&skuID, &color, &size, &desc, &price, &invIdent, &invTitle, &invDesc}, func() error {
			if !price.Valid {
				missingPrice = true
				return nil
			}
			imgs := skuImages[skuID]
			if imgs == nil {
				imgs = object{}
			}
			skus = append(skus, kv{fmt.Sprint(skuID), object{
				{"color", color}, {"size", size}, {"description", desc}, {"price", money(price.Decimal)},
				{"inventory_status_identifier", invIdent}, {"inventory_status_title", invTitle},
				{"inventory_status_description", invDesc}, {"sku_images", imgs},
			}})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("product skus: %w", err)
		}
		if missingPrice {
			return notFound() // as upstream (§5 O2)
		}
		return object{
			{"product", "success"},
			{"product_identifier", ident},
			{"product_data", object{
				{"title", title}, {"title_url", titleURL}, {"identifier", pident},
				{"headline", headline}, {"description_part_1", d1}, {"description_part_2", d2},
				{"product_images", images}, {"product_videos", videos}, {"skus", skus},
			}},
		}, nil
	})
}

func imageObjects(rq *request, sql string, id int64) (object, error) {
	rows, err := rq.conn.Query(rq.ctx, sql, id)
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	out := object{}
	var imgID int64
	var url string
	var main bool
	var caption *string
	_, err = pgx.ForEachRow(rows, []any{&imgID, &url, &main, &caption}, func() error {
		out = append(out, kv{fmt.Sprint(imgID), object{{"image_url", url}, {"main", main}, {"caption", caption}}})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	return out, nil
}
