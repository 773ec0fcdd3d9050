-- +goose Up
-- Reference data every tenant needs: the API answers 500 without the
-- configuration rows, terms of use, order-confirmation templates and
-- clientevent configuration row 1. Rows and ids are those of the upstream
-- seed migrations (user 0002-0005, order 0002/0004, clientevent); texts are
-- carried over verbatim. Unlike upstream, no database is exempt.

-- Analytics switch read by /user/logged-in.
INSERT INTO clientevent_configuration (id, log_client_events) VALUES
    (1, true);

-- Terms of use version 1.
INSERT INTO terms_of_use_version (id, version, version_note, publication_date_time) VALUES
    (1, 1, 'Specifically, we''ve modified our <a class="raw-link" href="/privacy-policy">Privacy Policy</a> and <a class="raw-link" href="/terms-of-sale">Terms of Sale</a>. Modifications include...', '2019-04-20 00:00:00+00');

INSERT INTO email_type (id, title) VALUES
    (1, 'Member'),
    (2, 'Prospect');

INSERT INTO email_status (id, title) VALUES
    (1, 'Draft'),
    (2, 'Ready'),
    (3, 'Sent');

INSERT INTO ad_type (id, title) VALUES
    (1, 'Google AdWords'),
    (2, 'Facebook');

INSERT INTO ad_status (id, title) VALUES
    (1, 'Draft'),
    (2, 'Ready'),
    (3, 'Running'),
    (4, 'Stopped');

-- E-mail templates: 1 and 2 are the order confirmations (member, prospect), 3 and 4
-- example campaigns. Bodies are Python str.format templates.
INSERT INTO email (id, subject, email_type_id, email_status_id, body_html, body_text, from_address, bcc_address, em_cd) VALUES
    (1, 'StartUpWebApp.com Order Confirmation', 1, 2, 'test', 'Hi {recipient_first_name}, {line_break}Thank you for your order! {line_break}ORDER INFORMATION {short_line_break}{order_information} {short_line_break}View your order here: {ENVIRONMENT_DOMAIN}/account/order?identifier={identifier}&em_cd={em_cd}&mb_cd={mb_cd} {line_break}PRODUCTS {short_line_break}{product_information} {line_break}SHIPPING METHOD {short_line_break}{shipping_information} {line_break}ORDER TOTAL {short_line_break}{order_total_information} {line_break}SHIPPING ADDRESS {short_line_break}{shipping_address_information} {line_break}BILLING ADDRESS {short_line_break}{billing_address_information} {line_break}PAYMENT INFORMATION {short_line_break}{payment_information} {line_break}Note: If you did NOT place an order at {ENVIRONMENT_DOMAIN}, do not click on the link. Instead, please forward this notification to contact@startupwebapp.com and let us know that you did not place this order and we''ll dig in further to figure out what is going on. {line_break}We''ll send you further emails with updates on your order along with shipping tracking information once it''s available. {line_break}Thank you for being part of the StartUp Web App community! {line_break}By placing this order you agreed to the StartUpWebApp.com Terms of Sale: {ENVIRONMENT_DOMAIN}/terms-of-sale {line_break}© 2018 StartUp Web App LLC, All rights reserved.', 'StartUpWebApp <bart+startupwebapp@mosaicmeshai.com>', '', 'gvREoqen93ffZsmBIc8zl'),
    (2, 'StartUpWebApp.com Order Confirmation', 2, 2, 'test prospect', 'Hi {recipient_first_name}, {line_break}Thank you for your order! {line_break}ORDER INFORMATION {short_line_break}{order_information} {short_line_break}View your order here: {ENVIRONMENT_DOMAIN}/account/order?identifier={identifier}&em_cd={em_cd}&pr_cd={pr_cd} {line_break}PRODUCTS {short_line_break}{product_information} {line_break}SHIPPING METHOD {short_line_break}{shipping_information} {line_break}ORDER TOTAL {short_line_break}{order_total_information} {line_break}SHIPPING ADDRESS {short_line_break}{shipping_address_information} {line_break}BILLING ADDRESS {short_line_break}{billing_address_information} {line_break}PAYMENT INFORMATION {short_line_break}{payment_information} {line_break}Note: If you did NOT place an order at {ENVIRONMENT_DOMAIN}, do not click on the link. Instead, please forward this notification to contact@startupwebapp.com and let us know that you did not place this order and we''ll dig in further to figure out what is going on. {line_break}We''ll send you further emails with updates on your order along with shipping tracking information once it''s available. {line_break}Thank you for being part of the StartUp Web App community! {line_break}By placing this order you agreed to the StartUpWebApp.com Terms of Sale: {ENVIRONMENT_DOMAIN}/terms-of-sale {line_break}© 2018 StartUp Web App LLC, All rights reserved. {line_break}{prosepct_email_unsubscribe_str}', 'StartUpWebApp <bart+startupwebapp@mosaicmeshai.com>', '', 'FpGyZy6kld9R2XTjqvBQN'),
    (3, 'Example Prospect Email', 2, 1, '<!DOCTYPE html> <html lang="en"> <head> <meta http-equiv="Content-Type" content="text/html; charset=utf-8" /> <title>{msg_subject}</title> </head> <body> {draft_html} <div class="greeting">Hi {recipient_first_name},</div> <p>I''m excited to let you know that with the latest updates to the <a href="{ENVIRONMENT_DOMAIN}?em_cd={em_cd}&pr_cd={pr_cd}" title="StartUp Web App Home Page">StartUpWebApp.com</a> website you can now <b><a href="{ENVIRONMENT_DOMAIN}/about?em_cd={em_cd}&pr_cd={pr_cd}" title="See It">do more!</a></b></p> <p>You can <a href="{ENVIRONMENT_DOMAIN}/create-account?em_cd={em_cd}&pr_cd={pr_cd}" title="Create a StartUpWebApp Account">create a StartUpWebApp.com account</a> to make <a href="{ENVIRONMENT_DOMAIN}/products?em_cd={em_cd}&pr_cd={pr_cd}" title="Products">shopping</a> easier.</p> <p>Thank you for your continued interest in StartUpWebApp!</p> <p>The Team<br/> <a href="mailto:Team@StartUpWebApp.com?Subject=Email%20Question" title="Email Team@StartUpWebApp.com">Team@StartUpWebApp.com</a><br/> <a href="{ENVIRONMENT_DOMAIN}?em_cd={em_cd}&pr_cd={pr_cd}" title="StartUpWebApp Home Page">StartUpWebApp.com</a></p> <div class="footer"> <div class="copyright">© 2019 StartUpWebApp LLC, All rights reserved.</div> <div class="unsubscribe">You are receiving this email because you''ve expressed interest in <a href="{ENVIRONMENT_DOMAIN}?em_cd={em_cd}&pr_cd={pr_cd}" title="StartUpWebApp Home Page">StartUpWebApp.com</a> and have been added to our mailing list. If you no longer wish to receive these email messages please follow this link to <a href="{ENVIRONMENT_DOMAIN}/account/email-unsubscribe?em_cd={em_cd}&pr_cd={pr_cd}&pr_token={pr_token}" title="Email Unsubscribe">unsubscribe</a>.</div> </div> </body> </html>', '{draft_text} Hi {recipient_first_name}, I''m excited to let you know that with the latest updates to the StartUpWebApp.com website you can now do more! Go to this link to view this feature: {ENVIRONMENT_DOMAIN}/about?em_cd={em_cd}&pr_cd={pr_cd} You can create a StartUpWebApp.com account to make shopping easier. Thank you for your continued interest in StartUpWebApp! The Team Team@StartUpWebApp.com © 2019 StartUpWebApp LLC, All rights reserved. You are receiving this email because you''ve expressed interest in StartUpWebApp.com and have been added to our mailing list. If you no longer wish to receive these email messages please follow this link to unsubscribe: {ENVIRONMENT_DOMAIN}/account/email-unsubscribe?em_cd={em_cd}&pr_cd={pr_cd}&pr_token={pr_token}', 'StartUpWebApp <bart+startupwebapp@mosaicmeshai.com>', '', 'A1jAqhMyLVpBVgxjuknq'),
    (4, 'Example Member Email', 1, 1, '<!DOCTYPE html> <html lang="en"> <head> <meta http-equiv="Content-Type" content="text/html; charset=utf-8" /> <title>{msg_subject}</title> </head> <body> {draft_html} <div class="greeting">Hi {recipient_first_name},</div> <p>I''m excited to let you know that with the latest updates to the <a href="{ENVIRONMENT_DOMAIN}?em_cd={em_cd}&mb_cd={mb_cd}" title="StartUpWebApp Home Page">StartUpWebApp.com</a> website you can now <b><a href="{ENVIRONMENT_DOMAIN}/about?em_cd={em_cd}&mb_cd={mb_cd}" title="See It">do more!</a></b></p> <p>After you sign in shopping will be easier.</p> <p>Thank you for being part of the StartUpWebApp community!</p> <p>The Team<br/> <a href="mailto:Team@StartUpWebApp.com?Subject=Email%20Question" title="Email Team@StartUpWebApp.com">Team@StartUpWebApp.com</a><br/> <a href="{ENVIRONMENT_DOMAIN}?em_cd={em_cd}&mb_cd={mb_cd}" title="StartUpWebApp Home Page">StartUpWebApp.com</a></p> <div class="footer"> <div class="copyright">© 2019 StartUpWebApp LLC, All rights reserved.</div> <div class="unsubscribe">You are receiving this email because you created a StartUpWebApp account at <a href="{ENVIRONMENT_DOMAIN}?em_cd={em_cd}&mb_cd={mb_cd}" title="StartUpWebApp Home Page">{ENVIRONMENT_DOMAIN}</a> and subscribed to newsletters. If you no longer wish to receive email newsletters please update your StartUpWebApp <a href="{ENVIRONMENT_DOMAIN}/account/edit-communication-preferences?em_cd={em_cd}&mb_cd={mb_cd}" title="Email Settings">email settings</a> or <a href="{ENVIRONMENT_DOMAIN}/account/email-unsubscribe?em_cd={em_cd}&mb_cd={mb_cd}&token={token}" title="Email Unsubscribe">unsubscribe</a>.</div> </div> </body> </html>', '{draft_text} Hi {recipient_first_name}, I''m excited to let you know that with the latest updates to the StartUpWebApp.com website you can now do more! Go to this link to view this feature: {ENVIRONMENT_DOMAIN}/about?em_cd={em_cd}&mb_cd={mb_cd} After you sign in shopping will be easier. Thank you for your continued interest in StartUpWebApp! The Team Team@StartUpWebApp.com © 2019 StartUpWebApp LLC, All rights reserved. You are receiving this email because you created a StartUpWebApp account at {ENVIRONMENT_DOMAIN} and subscribed to newsletters. If you no longer wish to receive email newsletters please choose one of the following options: Update your StartUpWebApp email settings by following this link: {ENVIRONMENT_DOMAIN}/account/edit-communication-preferences?em_cd={em_cd}&mb_cd={mb_cd} Unsubscribe by following this link: {ENVIRONMENT_DOMAIN}/account/email-unsubscribe?em_cd={em_cd}&mb_cd={mb_cd}&token={token}', 'StartUpWebApp <bart+startupwebapp@mosaicmeshai.com>', '', 'P0Ps5FLIfUUiMpdV3HOB');

INSERT INTO order_status (id, identifier, title, description) VALUES
    (1, 'accepted', 'Accepted', 'The order has been accepted by StartUpWebApp.com and is being processed.'),
    (2, 'manufacturing', 'Manufacturing', 'Custom items in the order are being manufactured.'),
    (3, 'packing', 'Packing', 'The order is being packed for shipment.'),
    (4, 'shipped', 'Shipped', 'The order has been shipped.');

INSERT INTO sku_type (id, title) VALUES
    (1, 'product');

INSERT INTO sku_inventory (id, title, identifier, description) VALUES
    (1, 'In Stock', 'in-stock', 'In Stock items are available to purchase.'),
    (2, 'Back Ordered', 'back-ordered', 'Back Ordered items are not available to purchase at this time.'),
    (3, 'Out of Stock', 'out-of-stock', 'Out of Stock items are not available to purchase.');

INSERT INTO order_configuration (id, key, float_value, string_value) VALUES
    (1, 'usernames_allowed_to_checkout', NULL, '*'),
    (2, 'an_ct_values_allowed_to_checkout', NULL, '*'),
    (3, 'default_shipping_method', NULL, 'USPSRetailGround'),
    (4, 'initial_order_status', NULL, 'accepted'),
    (5, 'order_confirmation_em_cd_member', NULL, 'gvREoqen93ffZsmBIc8zl'),
    (6, 'order_confirmation_em_cd_prospect', NULL, 'FpGyZy6kld9R2XTjqvBQN');

INSERT INTO shipping_method (id, identifier, carrier, shipping_cost, tracking_code_base_url, active) VALUES
    (1, 'USPSPriorityMail2Day', 'USPS Priority Mail 2-Day', 13.65, 'https://tools.usps.com/go/TrackConfirmAction.action?tRef=fullpage&tLc=1&text28777=&tLabels=', true),
    (2, 'USPSRetailGround', 'USPS Retail Ground', 9.56, 'https://tools.usps.com/go/TrackConfirmAction.action?tRef=fullpage&tLc=1&text28777=&tLabels=', true),
    (3, 'FedExGround', 'FedEx Ground', 10.85, 'https://www.fedex.com/apps/fedextrack/?action=track&cntry_code=us&trackingnumber=', true),
    (4, 'UPSGround', 'UPS Ground', 11.34, 'https://wwwapps.ups.com/WebTracking/track?&track.x=Track&trackNums=', true),
    (5, 'None', 'None', 0.00, 'none', false);

INSERT INTO product (id, title, title_url, identifier, headline, description_part_1, description_part_2) VALUES
    (1, 'Paper Clips', 'PaperClips', 'bSusp6dBHm', 'Paper clips can hold up to 20 pieces of paper together!', 'Made out of high quality metal and folded to exact specifications.', 'Use paperclips for all your paper binding needs!'),
    (2, 'Binder Clips', 'BinderClips', 'ITHJW3mytn', 'Binder clips can hold up to 100 pieces of paper together!', 'These strong binder clips will hold your papers together and won''t ever give up!', 'Just be careful not to pinch your finger!<br><br>Come in packs of 10.'),
    (3, 'Rubber Bands', 'RubberBands', 'v26ujdy3N1', 'Rubber bands are perfect for keeping rolled paper rolled!', 'Assorted colors and sizes.', '');

INSERT INTO product_image (id, product_id, image_url, main_image, caption) VALUES
    (1, 1, '/img/product/paper_clip_main_2.jpg', true, 'Paperclips'),
    (2, 2, '/img/product/binder_clips_main_2.jpg', true, 'Multiple sizes available'),
    (3, 3, '/img/product/rubber_bands_2.jpg', true, 'Multicolor rubber bands');

INSERT INTO product_video (id, product_id, video_url, video_thumbnail_url, caption) VALUES
    (1, 1, 'https://player.vimeo.com/video/334006583', '/img/product/paper_clip_video_1_2_thumbnail.jpg', 'Watch the paper clip in action!'),
    (2, 2, 'https://player.vimeo.com/video/334006589', '/img/product/binder_clip_video_1_2_thumbnail.jpg', 'Watch the paper binder in action!');

-- There is no SKU 3.
INSERT INTO sku (id, sku_type_id, sku_inventory_id, color, size, description) VALUES
    (1, 1, 1, 'Silver', 'Medium', 'Left Sided Paperclip'),
    (2, 1, 2, 'Silver', 'Medium', 'Right sided paperclip'),
    (4, 1, 2, 'Black', 'Large', 'Large Binder Clip'),
    (5, 1, 3, 'Black', 'Medium', 'Medium Binder Clip'),
    (6, 1, 1, 'Black', 'Small', 'Small Binder Clip'),
    (7, 1, 1, 'Multi', 'Multi', 'Multiple sizes and colors');

-- SKU 7 has two prices; the later one (14.99) is current.
INSERT INTO sku_price (id, sku_id, price, created_date_time) VALUES
    (1, 1, 3.50, '2019-04-22 00:00:00+00'),
    (2, 2, 3.50, '2019-04-22 00:00:00+00'),
    (4, 4, 5.99, '2019-04-22 00:00:00+00'),
    (5, 5, 4.99, '2019-04-22 00:00:00+00'),
    (6, 6, 3.99, '2019-04-22 00:00:00+00'),
    (7, 7, 10.99, '2019-04-20 00:00:00+00'),
    (8, 7, 14.99, '2019-04-22 00:00:00+00');

-- SKU 7 has no image of its own and falls back to the product image.
INSERT INTO sku_image (id, sku_id, image_url, main_image, caption) VALUES
    (1, 1, '/img/product/paper_clip_left_2.jpg', true, 'Left sided paperclip'),
    (2, 2, '/img/product/paper_clip_right_2.jpg', true, 'Right sided paperclip'),
    (4, 4, '/img/product/binder_clip_large_2.jpg', true, 'Large Binder Clip'),
    (5, 5, '/img/product/binder_clip_medium_2.jpg', true, 'Medium Binder Clip'),
    (6, 6, '/img/product/binder_clip_small_2.jpg', true, 'Small Binder Clip');

INSERT INTO product_sku (id, product_id, sku_id) VALUES
    (1, 1, 1),
    (2, 1, 2),
    (4, 2, 4),
    (5, 2, 5),
    (6, 2, 6),
    (7, 3, 7);

-- Seed-era discounts (no endpoint uses them at HEAD).
INSERT INTO discount_type (id, title, description, applies_to, action) VALUES
    (1, 'Save Percent Off Your Item Total', 'Take {}% off your item total', 'item_total', 'percent-off'),
    (2, 'Save Dollar Amount Off Your Item Total', 'Save ${} on your item total', 'item_total', 'dollar-amt-off'),
    (3, 'Free Months Digital Subscription', 'Get {} months of free digital subscription with your order', 'subscription', 'free-digital-months'),
    (4, 'Free USPS Retail Ground Shipping', 'Free USPS Retail Ground shipping on your order', 'shipping', 'free-usps-ground-shipping');

-- Valid for a year from the moment the tenant is created.
INSERT INTO discount_code (id, code, description, start_date_time, end_date_time, combinable, discount_amount, order_minimum, discount_type_id) VALUES
    (1, 'WELCOME10', 'Welcome! Get 10% off your first order', now(), now() + interval '365 days', false, 10.00, 0.00, 1);

-- New rows continue after the seeded ids.
SELECT setval(pg_get_serial_sequence('clientevent_configuration', 'id'), max(id)) FROM clientevent_configuration;
SELECT setval(pg_get_serial_sequence('terms_of_use_version', 'id'), max(id)) FROM terms_of_use_version;
SELECT setval(pg_get_serial_sequence('email_type', 'id'), max(id)) FROM email_type;
SELECT setval(pg_get_serial_sequence('email_status', 'id'), max(id)) FROM email_status;
SELECT setval(pg_get_serial_sequence('ad_type', 'id'), max(id)) FROM ad_type;
SELECT setval(pg_get_serial_sequence('ad_status', 'id'), max(id)) FROM ad_status;
SELECT setval(pg_get_serial_sequence('email', 'id'), max(id)) FROM email;
SELECT setval(pg_get_serial_sequence('order_status', 'id'), max(id)) FROM order_status;
SELECT setval(pg_get_serial_sequence('sku_type', 'id'), max(id)) FROM sku_type;
SELECT setval(pg_get_serial_sequence('sku_inventory', 'id'), max(id)) FROM sku_inventory;
SELECT setval(pg_get_serial_sequence('order_configuration', 'id'), max(id)) FROM order_configuration;
SELECT setval(pg_get_serial_sequence('shipping_method', 'id'), max(id)) FROM shipping_method;
SELECT setval(pg_get_serial_sequence('product', 'id'), max(id)) FROM product;
SELECT setval(pg_get_serial_sequence('product_image', 'id'), max(id)) FROM product_image;
SELECT setval(pg_get_serial_sequence('product_video', 'id'), max(id)) FROM product_video;
SELECT setval(pg_get_serial_sequence('sku', 'id'), max(id)) FROM sku;
SELECT setval(pg_get_serial_sequence('sku_price', 'id'), max(id)) FROM sku_price;
SELECT setval(pg_get_serial_sequence('sku_image', 'id'), max(id)) FROM sku_image;
SELECT setval(pg_get_serial_sequence('product_sku', 'id'), max(id)) FROM product_sku;
SELECT setval(pg_get_serial_sequence('discount_type', 'id'), max(id)) FROM discount_type;
SELECT setval(pg_get_serial_sequence('discount_code', 'id'), max(id)) FROM discount_code;

-- +goose Down
-- Fails, rather than cascading, while user data still points at these rows.
DELETE FROM discount_code;
DELETE FROM discount_type;
DELETE FROM product_sku;
DELETE FROM sku_image;
DELETE FROM sku_price;
DELETE FROM sku;
DELETE FROM product_video;
DELETE FROM product_image;
DELETE FROM product;
DELETE FROM shipping_method;
DELETE FROM order_configuration;
DELETE FROM sku_inventory;
DELETE FROM sku_type;
DELETE FROM order_status;
DELETE FROM email;
DELETE FROM ad_status;
DELETE FROM ad_type;
DELETE FROM email_status;
DELETE FROM email_type;
DELETE FROM terms_of_use_version;
DELETE FROM clientevent_configuration;
