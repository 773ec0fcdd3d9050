package importer

// The map from a Django StartupWebApp database (upstream 8591b6e) to a tenant
// database, in one place; docs/import.md describes it and a test keeps the
// two in step. Tables are listed parents first, so each one's references are
// already written when it is.

// table maps one destination table to its Django source.
type table struct {
	Dest, Source string
	// Cols are the destination columns written, with the source expression
	// of each; a column not listed here keeps its default (cart's
	// created_date_time) and is never changed by a re-run.
	Cols []col
	// Optional tables may be missing from the source (the seed-era discount
	// tables were dropped upstream); the destination's rows then stay.
	Optional bool
	// Mirror tables hold only what the source holds: rows the source no
	// longer has are deleted (the original deletes a cart once it is
	// checked out, and a cart's lines and method with it).
	Mirror bool
	// KeepNewest lists column sets the destination keeps unique but the
	// original only enforced in code: of source rows sharing non-NULL
	// values of a set, the one with the highest id is imported and the
	// others are refused, with the row in the report.
	KeepNewest [][]string
}

// col is one destination column: the source expression read for it (empty:
// the column of the same name) and, for a re-run, how an existing row's
// value is updated (empty: the source's value, EXCLUDED.<name>).
type col struct {
	Name, Source, Update string
}

func cols(names ...string) []col {
	out := make([]col, len(names))
	for i, n := range names {
		out[i] = col{Name: n}
	}
	return out
}

func renamed(name, source string) col { return col{Name: name, Source: source} }

var addressCols = cols("id", "name", "address_line1", "city", "state", "zip", "country", "country_code")

// tables is the whole map. Signed member values (verification and reset
// codes, unsubscribe tokens) are adjusted per run by signedValues.
var tables = []table{
	{Dest: "account", Source: "auth_user", Cols: []col{
		{Name: "id"}, {Name: "username"},
		// A hash the platform re-made at a sign-in (argon2id) is kept:
		// the source still holds the member's older pbkdf2 hash.
		{Name: "password_hash", Source: "password",
			Update: "CASE WHEN d.password_hash LIKE '$argon2id$%' THEN d.password_hash ELSE EXCLUDED.password_hash END"},
		{Name: "first_name"}, {Name: "last_name"}, {Name: "email"}, {Name: "is_active"}, {Name: "is_staff"},
		// A sign-in on the platform is newer than the source's.
		{Name: "last_login", Update: "GREATEST(d.last_login, EXCLUDED.last_login)"},
		{Name: "date_joined"},
	}},
	{Dest: "default_shipping_address", Source: "user_defaultshippingaddress", Cols: addressCols},
	{Dest: "member", Source: "user_member", Cols: []col{
		{Name: "id"}, renamed("account_id", "user_id"), {Name: "newsletter_subscriber"}, {Name: "email_verified"},
		{Name: "email_verification_string"}, {Name: "email_verification_string_signed"},
		{Name: "email_unsubscribed"}, {Name: "email_unsubscribe_string"}, {Name: "email_unsubscribe_string_signed"},
		{Name: "reset_password_string"}, {Name: "reset_password_string_signed"},
		{Name: "mb_cd"}, {Name: "stripe_customer_token"}, {Name: "default_shipping_address_id"},
		{Name: "use_default_shipping_and_payment_info"},
	}},
	{Dest: "prospect", Source: "user_prospect", Cols: cols("id", "first_name", "last_name", "email", "phone",
		"email_unsubscribed", "email_unsubscribe_string", "email_unsubscribe_string_signed",
		"prospect_comment", "swa_comment", "pr_cd", "created_date_time", "converted_date_time")},
	{Dest: "email_unsubscribe_reason", Source: "user_emailunsubscribereasons", Cols: cols("id", "member_id", "prospect_id",
		"no_longer_want_to_receive", "never_signed_up", "inappropriate", "spam", "other", "created_date_time")},
	{Dest: "terms_of_use_version", Source: "user_terms_of_use_version", Cols: cols("id", "version", "version_note", "publication_date_time")},
	{Dest: "terms_of_use_agreement", Source: "user_member_terms_of_use_version_agreed", Cols: []col{
		{Name: "id"}, {Name: "member_id"}, renamed("terms_of_use_version_id", "termsofuseversion_id"), {Name: "agreed_date_time"},
	}},
	{Dest: "email_type", Source: "user_email_type", Cols: cols("id", "title")},
	{Dest: "email_status", Source: "user_email_status", Cols: cols("id", "title")},
	{Dest: "email", Source: "user_email", Cols: cols("id", "subject", "email_type_id", "email_status_id",
		"body_html", "body_text", "from_address", "bcc_address", "em_cd")},
	{Dest: "email_sent", Source: "user_email_sent", Cols: cols("id", "member_id", "prospect_id", "email_id", "sent_date_time")},
	{Dest: "ad_type", Source: "user_ad_type", Cols: cols("id", "title")},
	{Dest: "ad_status", Source: "user_ad_status", Cols: cols("id", "title")},
	{Dest: "ad", Source: "user_ad", Cols: cols("id", "campaignid", "adgroupid", "adid", "final_url", "final_url_suffix",
		"headline_1", "headline_2", "headline_3", "description_1", "description_2", "ad_type_id", "ad_status_id", "ad_cd")},
	{Dest: "chat_message", Source: "user_chat_message", Cols: cols("id", "member_id", "prospect_id", "name",
		"email_address", "message", "created_date_time")},

	{Dest: "order_configuration", Source: "order_configuration", Cols: cols("id", "key", "float_value", "string_value")},
	{Dest: "sku_type", Source: "order_sku_type", Cols: cols("id", "title")},
	{Dest: "sku_inventory", Source: "order_sku_inventory", Cols: cols("id", "title", "identifier", "description")},
	{Dest: "sku", Source: "order_sku", Cols: cols("id", "sku_type_id", "sku_inventory_id", "color", "size", "description")},
	{Dest: "sku_price", Source: "order_sku_price", Cols: cols("id", "sku_id", "price", "created_date_time")},
	{Dest: "sku_image", Source: "order_sku_image", Cols: cols("id", "sku_id", "image_url", "main_image", "caption")},
	{Dest: "product", Source: "order_product", Cols: cols("id", "title", "title_url", "identifier", "headline",
		"description_part_1", "description_part_2")},
	{Dest: "product_image", Source: "order_product_image", Cols: cols("id", "product_id", "image_url", "main_image", "caption")},
	{Dest: "product_video", Source: "order_product_video", Cols: cols("id", "product_id", "video_url", "video_thumbnail_url", "caption")},
	{Dest: "product_sku", Source: "order_product_sku", Cols: cols("id", "product_id", "sku_id"),
		KeepNewest: [][]string{{"sku_id"}}},
	{Dest: "shipping_method", Source: "order_shipping_method", Cols: cols("id", "identifier", "carrier", "shipping_cost",
		"tracking_code_base_url", "active")},
	{Dest: "discount_type", Source: "order_discount_type", Optional: true, Cols: cols("id", "title", "description", "applies_to", "action")},
	{Dest: "discount_code", Source: "order_discount_code", Optional: true, Cols: []col{
		{Name: "id"}, {Name: "code"}, {Name: "description"}, {Name: "start_date_time"}, {Name: "end_date_time"},
		{Name: "combinable"}, {Name: "discount_amount"}, {Name: "order_minimum"}, renamed("discount_type_id", "discounttype_id"),
	}},

	{Dest: "cart_shipping_address", Source: "order_cart_shipping_address", Cols: addressCols},
	{Dest: "cart_payment", Source: "order_cart_payment", Cols: cols("id", "stripe_customer_token", "stripe_card_id", "email")},
	{Dest: "cart", Source: "order_cart", Mirror: true, Cols: cols("id", "member_id", "anonymous_cart_id", "shipping_address_id", "payment_id"),
		KeepNewest: [][]string{{"member_id"}, {"anonymous_cart_id"}}},
	{Dest: "cart_sku", Source: "order_cart_sku", Mirror: true, Cols: cols("id", "cart_id", "sku_id", "quantity")},
	{Dest: "cart_shipping_method", Source: "order_cart_shipping_method", Mirror: true, Cols: []col{
		{Name: "id"}, {Name: "cart_id"}, renamed("shipping_method_id", "shippingmethod_id"),
	}, KeepNewest: [][]string{{"cart_id"}}},
	{Dest: "cart_discount", Source: "order_cart_discount", Optional: true, Mirror: true, Cols: []col{
		{Name: "id"}, {Name: "cart_id"}, renamed("discount_code_id", "discountcode_id"),
	}},

	{Dest: "order_payment", Source: "order_order_payment", Cols: cols("id", "email", "payment_type", "card_name", "card_brand",
		"card_last4", "card_exp_month", "card_exp_year", "card_zip", "stripe_payment_intent_id")},
	{Dest: "order_shipping_address", Source: "order_order_shipping_address", Cols: addressCols},
	{Dest: "order_billing_address", Source: "order_order_billing_address", Cols: addressCols},
	{Dest: "customer_order", Source: "order_order", Cols: cols("id", "identifier", "member_id", "prospect_id", "payment_id",
		"shipping_address_id", "billing_address_id", "sales_tax_amt", "item_subtotal", "shipping_amt", "order_total",
		"agreed_with_terms_of_sale", "order_date_time"),
		KeepNewest: [][]string{{"payment_id"}, {"shipping_address_id"}, {"billing_address_id"}}},
	{Dest: "order_sku", Source: "order_order_sku", Cols: cols("id", "order_id", "sku_id", "quantity", "price_each")},
	{Dest: "order_status", Source: "order_status", Cols: cols("id", "identifier", "title", "description")},
	{Dest: "order_status_history", Source: "order_order_status", Cols: []col{
		{Name: "id"}, {Name: "order_id"}, renamed("order_status_id", "status_id"), {Name: "created_date_time"},
	}},
	{Dest: "order_shipping_method", Source: "order_order_shipping_method", Cols: []col{
		{Name: "id"}, {Name: "order_id"}, renamed("shipping_method_id", "shippingmethod_id"), {Name: "tracking_number"},
	}, KeepNewest: [][]string{{"order_id"}}},
	{Dest: "order_discount", Source: "order_order_discount", Optional: true, Cols: []col{
		{Name: "id"}, {Name: "order_id"}, renamed("discount_code_id", "discountcode_id"), {Name: "applied"},
	}},
	{Dest: "order_email_failure", Source: "order_order_email_failure", Cols: cols("id", "order_id", "failure_type", "error_message",
		"customer_email", "is_member_order", "phase", "created_date_time", "resolved", "resolved_date_time", "resolved_by",
		"resolution_notes")},

	{Dest: "clientevent_configuration", Source: "clientevent_configuration", Cols: cols("id", "log_client_events")},
	{Dest: "pageview", Source: "clientevent_pageview", Cols: []col{
		{Name: "id"}, renamed("account_id", "user_id"), {Name: "anonymous_id"}, {Name: "url"}, {Name: "page_width"},
		{Name: "remote_addr"}, {Name: "http_user_agent"}, {Name: "created_date_time"},
	}},
	{Dest: "ajax_error", Source: "clientevent_ajax_error", Cols: []col{
		{Name: "id"}, renamed("account_id", "user_id"), {Name: "anonymous_id"}, {Name: "url"}, {Name: "error_id"}, {Name: "created_date_time"},
	}},
	{Dest: "button_click", Source: "clientevent_button_click", Cols: []col{
		{Name: "id"}, renamed("account_id", "user_id"), {Name: "anonymous_id"}, {Name: "url"}, {Name: "button_id"}, {Name: "created_date_time"},
	}},
	{Dest: "link_event", Source: "clientevent_linkevent", Cols: []col{
		{Name: "id"}, renamed("account_id", "user_id"), {Name: "prospect_id"}, {Name: "anonymous_id"}, {Name: "email_id"},
		{Name: "ad_id"}, {Name: "url"}, {Name: "created_date_time"},
	}},
}

// notImported are the source's framework tables, which the platform has no
// place for; the report counts their rows and says why.
var notImported = []struct{ Table, Why string }{
	{"django_session", "sessions live in Redis: members sign in again"},
	{"auth_group", "every account with a member row is a member; groups have no meaning here"},
	{"auth_user_groups", "see auth_group"},
	{"auth_permission", "Django admin permissions; staff keep only their is_staff flag"},
	{"auth_group_permissions", "see auth_permission"},
	{"auth_user_user_permissions", "see auth_permission"},
	{"django_admin_log", "the Django admin's own history"},
	{"django_content_type", "Django's model registry"},
	{"django_migrations", "Django's migration ledger; the tenant has its own"},
}

// Tables lists the map as (destination, source) pairs, in import order.
func Tables() [][2]string {
	out := make([][2]string, len(tables))
	for i, t := range tables {
		out[i] = [2]string{t.Dest, t.Source}
	}
	return out
}
