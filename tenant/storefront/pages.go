package storefront

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

var identifierRE = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// errorMessages are the words for the contract's error codes, shown after
// a form redirects back with ?error=<code>.
var errorMessages = map[string]string{
	"cart-not-found":                          "Your cart is empty.",
	"cart-is-empty":                           "Your cart is empty.",
	"cart-sku-not-found":                      "That item is not in your cart any more.",
	"sku-not-found":                           "Please choose an available option.",
	"sku-id-required":                         "Please choose an option.",
	"quantity":                                "Please enter a quantity from 1 to 99.",
	"shipping-method-identifier-required":     "Please choose a shipping method.",
	"error-setting-cart-shipping-method":      "That shipping method is not available.",
	"discount-code-required":                  "Please enter a discount code.",
	"cart-discount-code-not-found":            "We do not know that discount code.",
	"cart-discount-code-not-active":           "That discount code is not active.",
	"cart-discount-code-already-applied":      "That discount code is already applied.",
	"checkout-not-allowed":                    "Checkout is not open at the moment.",
	"terms-of-sale-required":                  "Please agree to the terms of sale to continue.",
	"anonymous-email-address-required":        "Please enter your e-mail address.",
	"email-address-is-associated-with-member": "This e-mail address belongs to an account. Please sign in to continue.",
	"stripe-error":                            "The payment service refused the checkout. Please try again.",
	"unexpected-error":                        "Payments are not available at the moment. Please try again.",
	"signature-invalid":                       "This link is no longer valid. Please ask for a new one.",
	"code-doesnt-match":                       "This link was already used or replaced by a newer one.",
	"version-already-agreed":                  "You already agreed to these terms.",
	"version-provided-not-most-recent":        "These terms were replaced by a newer version; please read them again.",
	"version-not-found":                       "Those terms could not be found.",
	"version-required":                        "Those terms could not be found.",
}

// errorData is the data of a page that shows the message of ?error=.
func errorData(c *fiber.Ctx, data map[string]any) map[string]any {
	if data == nil {
		data = map[string]any{}
	}
	if msg, ok := errorMessages[c.Query("error")]; ok {
		data["error"] = msg
	}
	return data
}

// apiError is the error code of an answer: errors.error, or the first
// field of errors.
func apiError(o *Obj) string {
	errs := obj(o, "errors")
	if e := str(errs.Get("error")); e != "" {
		return e
	}
	if items := errs.Items(); len(items) > 0 {
		return items[0].Key
	}
	return "unexpected-error"
}

// setFlag turns a checkbox of the form into the contract's flag: the
// literal "true" when ticked, "false" when it was not sent.
func setFlag(c *fiber.Ctx, name string) {
	args := c.Request().PostArgs()
	v := string(args.Peek(name))
	if v == "true" || v == "on" {
		args.Set(name, "true")
	} else {
		args.Set(name, "false")
	}
}

// ensureField sends an empty value for a field the form may leave out.
func ensureField(c *fiber.Ctx, name string) {
	if args := c.Request().PostArgs(); !args.Has(name) {
		args.Set(name, "")
	}
}

func formValue(c *fiber.Ctx, name string) string {
	return string(c.Request().PostArgs().Peek(name))
}

func (a *App) home(c *fiber.Ctx) error {
	p, err := call(c, a.shop.Endpoint("products"))
	if err != nil {
		return err
	}
	return a.render(c, http.StatusOK, "home", "", map[string]any{"products": obj(p, "products_data")})
}

func (a *App) products(c *fiber.Ctx) error {
	p, err := call(c, a.shop.Endpoint("products"))
	if err != nil {
		return err
	}
	return a.render(c, http.StatusOK, "products", "Products", map[string]any{"products": obj(p, "products_data")})
}

func (a *App) product(c *fiber.Ctx) error {
	id := c.Query("id")
	if !identifierRE.MatchString(id) {
		return a.errorPage(c, http.StatusNotFound)
	}
	p, err := call(c, a.shop.ProductEndpoint(id))
	if err != nil {
		return err
	}
	if str(p.Get("product")) != "success" {
		return a.errorPage(c, http.StatusNotFound)
	}
	d := obj(p, "product_data")
	return a.render(c, http.StatusOK, "product", str(d.Get("title")), errorData(c, map[string]any{"product": d}))
}

// addToCart is the product page's form: O10 with sku_id and quantity.
func (a *App) addToCart(c *fiber.Ctx) error {
	back := "/product?" + url.Values{"name": {formValue(c, "name")}, "id": {formValue(c, "id")}}.Encode()
	r, err := call(c, a.shop.Endpoint("cart-add-product-sku"))
	if err != nil {
		return err
	}
	if str(r.Get("cart_add_product_sku")) != "success" {
		code := apiError(r)
		return redirect(c, back+"&error="+url.QueryEscape(code))
	}
	return redirect(c, back+"&notice=added")
}

func (a *App) cart(c *fiber.Ctx) error {
	items, err := call(c, a.shop.Endpoint("cart-items"))
	if err != nil {
		return err
	}
	data := errorData(c, map[string]any{"found": truthy(items.Get("cart_found")), "lines": obj(items, "item_data.product_sku_data")})
	if truthy(items.Get("cart_found")) {
		methods, err := call(c, a.shop.Endpoint("cart-shipping-methods"))
		if err != nil {
			return err
		}
		totals, err := call(c, a.shop.Endpoint("cart-totals"))
		if err != nil {
			return err
		}
		codes, err := call(c, a.shop.Endpoint("cart-discount-codes"))
		if err != nil {
			return err
		}
		data["methods"] = obj(methods, "cart_shipping_methods")
		data["selected"] = str(methods.Get("shipping_method_selected"))
		data["totals"] = obj(totals, "cart_totals_data")
		data["codes"] = obj(codes, "discount_code_data")
		checkout := obj(items, "item_data.product_sku_data").Len() > 0
		var qty int64
		for _, l := range obj(items, "item_data.product_sku_data").Items() {
			qty += number(get(l.Value, "quantity"))
			if str(get(l.Value, "sku_inventory__identifier")) != "in-stock" {
				checkout = false
			}
		}
		data["checkout"] = checkout && qty > 0
	}
	return a.render(c, http.StatusOK, "cart", "Your cart", data)
}

// cartPost is every form of the cart page, told apart by action; each is
// the API endpoint of the same change.
func (a *App) cartPost(c *fiber.Ctx) error {
	endpoint, key := "", ""
	switch formValue(c, "action") {
	case "quantity":
		endpoint, key = "cart-update-sku-quantity", "cart_update_sku_quantity"
	case "remove":
		endpoint, key = "cart-remove-sku", "cart_remove_sku"
	case "shipping":
		endpoint, key = "cart-update-shipping-method", "cart_update_shipping_method"
	case "discount":
		endpoint, key = "cart-apply-discount-code", "cart_apply_discount_code"
	case "discount-remove":
		endpoint, key = "cart-remove-discount-code", "cart_remove_discount_code"
	default:
		return a.errorPage(c, http.StatusBadRequest)
	}
	r, err := call(c, a.shop.Endpoint(endpoint))
	if err != nil {
		return err
	}
	if str(r.Get(key)) != "success" {
		return redirect(c, "/cart?error="+url.QueryEscape(apiError(r)))
	}
	return redirect(c, "/cart?notice=cart-updated")
}

func (a *App) confirm(c *fiber.Ctx) error {
	allowed, err := call(c, a.shop.Endpoint("checkout-allowed"))
	if err != nil {
		return err
	}
	if !truthy(allowed.Get("checkout_allowed")) {
		return a.render(c, http.StatusOK, "confirm", "Checkout", map[string]any{"closed": true})
	}
	items, err := call(c, a.shop.Endpoint("confirm-items"))
	if err != nil {
		return err
	}
	lines := obj(items, "item_data.product_sku_data")
	if lines.Len() == 0 {
		return redirect(c, "/cart")
	}
	method, err := call(c, a.shop.Endpoint("confirm-shipping-method"))
	if err != nil {
		return err
	}
	totals, err := call(c, a.shop.Endpoint("confirm-totals"))
	if err != nil {
		return err
	}
	codes, err := call(c, a.shop.Endpoint("confirm-discount-codes"))
	if err != nil {
		return err
	}
	return a.render(c, http.StatusOK, "confirm", "Checkout", errorData(c, map[string]any{
		"lines": lines, "method": obj(method, "confirm_shipping_method"), "totals": obj(totals, "confirm_totals_data"),
		"codes": obj(codes, "discount_code_data"), "email": c.Query("email"),
	}))
}

// confirmPost checks the terms-of-sale box, registers a guest's address
// (O18) and creates the Stripe Checkout Session (O15), then sends the
// browser to Stripe.
func (a *App) confirmPost(c *fiber.Ctx) error {
	email := strings.TrimSpace(formValue(c, "anonymous_email_address"))
	back := func(code string) error {
		return redirect(c, "/checkout/confirm?"+url.Values{"error": {code}, "email": {email}}.Encode())
	}
	if formValue(c, "agree_terms_of_sale") != "true" {
		return back("terms-of-sale-required")
	}
	if a.acct.AccountID(c) == 0 {
		if email == "" {
			return back("anonymous-email-address-required")
		}
		r, err := call(c, a.shop.Endpoint("anonymous-email-address-payment-lookup"))
		if err != nil {
			return err
		}
		if !truthy(r.Get("checkout_allowed")) {
			return back("checkout-not-allowed")
		}
		if str(r.Get("anonymous_email_address_payment_lookup")) != "success" {
			return back(apiError(r))
		}
	}
	r, err := call(c, a.shop.Endpoint("create-checkout-session"))
	if err != nil {
		return err
	}
	if str(r.Get("create_checkout_session")) != "success" {
		return back(apiError(r))
	}
	return redirect(c, str(r.Get("checkout_url")))
}

// success is Stripe's success_url: O16 makes (or finds) the order, which
// the page then shows (O20).
func (a *App) success(c *fiber.Ctx) error {
	r, err := call(c, a.shop.Endpoint("checkout-session-success"))
	if err != nil {
		return err
	}
	if str(r.Get("checkout_session_success")) != "success" {
		msg := map[string]string{
			"session-id-required":   "This page needs the checkout session of your payment.",
			"invalid-session":       "We could not find this checkout session.",
			"payment-not-completed": "Your payment is not complete yet. If you paid, please reload this page in a moment.",
			"cart-not-found":        "We could not find the cart of this payment. Please contact us.",
		}[apiError(r)]
		if msg == "" {
			msg = "Your order could not be confirmed. Please reload this page or contact us."
		}
		return a.render(c, http.StatusOK, "success", "Order", map[string]any{"error": msg})
	}
	ident := str(r.Get("order_identifier"))
	o, err := call(c, a.shop.OrderEndpoint(ident))
	if err != nil {
		return err
	}
	return a.render(c, http.StatusOK, "success", "Thank you for your order", map[string]any{
		"identifier": ident, "order": obj(o, "order_data"), "found": str(o.Get("order_detail")) == "success"})
}

func (a *App) login(c *fiber.Ctx) error {
	data := map[string]any{"next": c.Query("next"), "code": c.Query("email_verification_code"), "order": c.Query("order_identifier")}
	if c.Query("message") == "not-authenticated" {
		data["error"] = "Please sign in to see that page."
	}
	return a.render(c, http.StatusOK, "login", "Sign in", data)
}

// loginPost is U3; on success it goes where the original's login page
// went: next (with the verification code or order identifier it carried)
// or the account page.
func (a *App) loginPost(c *fiber.Ctx) error {
	setFlag(c, "remember_me")
	next, code, order := formValue(c, "next"), formValue(c, "email_verification_code"), formValue(c, "order_identifier")
	r, err := call(c, a.acct.Endpoint("login"))
	if err != nil {
		return err
	}
	if str(r.Get("login")) != "true" {
		return a.render(c, http.StatusOK, "login", "Sign in", map[string]any{"next": next, "code": code, "order": order,
			"username": formValue(c, "username"), "error": "The username or password is not correct."})
	}
	to := localNext(next, "/account/")
	q := url.Values{}
	if code != "" {
		q.Set("email_verification_code", code)
	}
	if order != "" {
		q.Set("identifier", order)
	}
	if len(q) > 0 {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + q.Encode()
	} else if to == "/account/" {
		to += "?notice=signed-in"
	}
	return redirect(c, to)
}

func (a *App) logoutPost(c *fiber.Ctx) error {
	if _, err := call(c, a.acct.Endpoint("logout")); err != nil {
		return err
	}
	return redirect(c, "/login?notice=signed-out")
}

func (a *App) createAccount(c *fiber.Ctx) error {
	return a.render(c, http.StatusOK, "create-account", "Create an account", map[string]any{"next": c.Query("next"), "form": map[string]string{}})
}

func (a *App) createAccountPost(c *fiber.Ctx) error {
	setFlag(c, "newsletter")
	setFlag(c, "remember_me")
	r, err := call(c, a.acct.Endpoint("create-account"))
	if err != nil {
		return err
	}
	next := formValue(c, "next")
	if str(r.Get("create_account")) != "true" {
		form := map[string]string{}
		for _, f := range []string{"firstname", "lastname", "username", "email_address"} {
			form[f] = formValue(c, f)
		}
		form["newsletter"] = formValue(c, "newsletter")
		return a.render(c, http.StatusOK, "create-account", "Create an account", map[string]any{"next": next, "form": form,
			"errors": obj(r, "errors"), "error": "Please correct the fields marked below."})
	}
	return redirect(c, localNext(next, "/account/?notice=account-created"))
}

func (a *App) forgotUsername(c *fiber.Ctx) error {
	return a.render(c, http.StatusOK, "forgot-username", "Forgot your username?", nil)
}

func (a *App) forgotUsernamePost(c *fiber.Ctx) error {
	if _, err := call(c, a.acct.Endpoint("forgot-username")); err != nil {
		return err
	}
	return redirect(c, "/forgot-username?notice=username-sent")
}

func (a *App) resetPassword(c *fiber.Ctx) error {
	return a.render(c, http.StatusOK, "reset-password", "Reset your password", nil)
}

func (a *App) resetPasswordPost(c *fiber.Ctx) error {
	if _, err := call(c, a.acct.Endpoint("reset-password")); err != nil {
		return err
	}
	return redirect(c, "/reset-password?notice=reset-sent")
}

func (a *App) setNewPassword(c *fiber.Ctx) error {
	return a.render(c, http.StatusOK, "set-new-password", "Set a new password", map[string]any{"code": c.Query("password_reset_code")})
}

func (a *App) setNewPasswordPost(c *fiber.Ctx) error {
	r, err := call(c, a.acct.Endpoint("set-new-password"))
	if err != nil {
		return err
	}
	res := str(r.Get("set_new_password"))
	if res == "success" {
		return redirect(c, "/login?notice=password-set")
	}
	data := map[string]any{"code": formValue(c, "password_reset_code"), "username": formValue(c, "username")}
	switch res {
	case "username-not-found":
		data["error"] = str(r.Get("error"))
	case "password-error":
		data["error"] = "Please choose another password."
		data["errors"] = obj(r, "errors")
	default:
		data["error"] = errorMessages[res]
	}
	return a.render(c, http.StatusOK, "set-new-password", "Set a new password", data)
}

// member returns U5's account content, or nil (and a redirect to the
// sign-in page, back to this page afterwards) for an anonymous visitor.
func (a *App) member(c *fiber.Ctx, next string) (*Obj, bool, error) {
	r, err := call(c, a.acct.Endpoint("account-content"))
	if err != nil {
		return nil, false, err
	}
	content := obj(r, "account_content")
	if !truthy(content.Get("authenticated")) {
		q := url.Values{"next": {next}, "message": {"not-authenticated"}}
		if code := c.Query("email_verification_code"); code != "" {
			q.Set("email_verification_code", code)
		}
		return nil, false, redirect(c, "/login?"+q.Encode())
	}
	return content, true, nil
}

func (a *App) account(c *fiber.Ctx) error {
	content, ok, err := a.member(c, "account")
	if !ok {
		return err
	}
	code := c.Query("email_verification_code")
	verify := code != "" && !truthy(get(content, "email_data.email_verified"))
	return a.render(c, http.StatusOK, "account", "Your account", errorData(c, map[string]any{
		"content": content, "code": code, "verify": verify}))
}

// accountPost is the account page's two forms: verify the address with
// the mailed code (U8), or mail a new code (U7).
func (a *App) accountPost(c *fiber.Ctx) error {
	if formValue(c, "action") == "resend" {
		r, err := call(c, a.acct.Endpoint("verify-email-address"))
		if err != nil {
			return err
		}
		if str(r.Get("verify_email_address")) == "user_not_authenticated" {
			return redirect(c, "/login?next=account&message=not-authenticated")
		}
		return redirect(c, "/account/?notice=verification-sent")
	}
	r, err := call(c, a.acct.Endpoint("verify-email-address-response"))
	if err != nil {
		return err
	}
	switch res := str(r.Get("verify_email_address_response")); res {
	case "success":
		return redirect(c, "/account/?notice=verified")
	case "user_not_authenticated":
		return redirect(c, "/login?"+url.Values{"next": {"account"}, "email_verification_code": {formValue(c, "email_verification_code")}}.Encode())
	default:
		return redirect(c, "/account/?error="+url.QueryEscape(res))
	}
}

// order is the order page (O20) of a member's order or a guest's (the
// mail's link carries the identifier); without an identifier it is the
// guest's order lookup.
func (a *App) order(c *fiber.Ctx) error {
	ident := strings.TrimSpace(c.Query("identifier"))
	if ident == "" {
		return a.render(c, http.StatusOK, "order", "Find your order", map[string]any{"lookup": true})
	}
	if !identifierRE.MatchString(ident) {
		return a.render(c, http.StatusOK, "order", "Find your order", map[string]any{"lookup": true, "error": "We could not find that order.", "identifier": ident})
	}
	r, err := call(c, a.shop.OrderEndpoint(ident))
	if err != nil {
		return err
	}
	if str(r.Get("order_detail")) != "success" {
		switch apiError(r) {
		case "log-in-required-to-view-order":
			return redirect(c, "/login?"+url.Values{"next": {"account/order"}, "order_identifier": {ident}, "message": {"not-authenticated"}}.Encode())
		case "order-not-in-account":
			return a.render(c, http.StatusOK, "order", "Find your order", map[string]any{"lookup": true, "error": "That order belongs to another account.", "identifier": ident})
		}
		return a.render(c, http.StatusOK, "order", "Find your order", map[string]any{"lookup": true, "error": "We could not find that order.", "identifier": ident})
	}
	return a.render(c, http.StatusOK, "order", "Order "+ident, map[string]any{"order": obj(r, "order_data"), "identifier": ident})
}

func (a *App) editInformation(c *fiber.Ctx) error {
	content, ok, err := a.member(c, "account/edit-my-information")
	if !ok {
		return err
	}
	return a.render(c, http.StatusOK, "edit-information", "Edit my information", map[string]any{"form": map[string]string{
		"firstname": str(get(content, "personal_data.first_name")), "lastname": str(get(content, "personal_data.last_name")),
		"email_address": str(get(content, "email_data.email_address"))}})
}

func (a *App) editInformationPost(c *fiber.Ctx) error {
	r, err := call(c, a.acct.Endpoint("update-my-information"))
	if err != nil {
		return err
	}
	switch str(r.Get("update_my_information")) {
	case "success":
		return redirect(c, "/account/?notice=information-saved")
	case "user_not_authenticated":
		return redirect(c, "/login?next=account/edit-my-information&message=not-authenticated")
	}
	return a.render(c, http.StatusOK, "edit-information", "Edit my information", map[string]any{"errors": obj(r, "errors"),
		"error": "Please correct the fields marked below.", "form": map[string]string{"firstname": formValue(c, "firstname"),
			"lastname": formValue(c, "lastname"), "email_address": formValue(c, "email_address")}})
}

func (a *App) editPreferences(c *fiber.Ctx) error {
	content, ok, err := a.member(c, "account/edit-communication-preferences")
	if !ok {
		return err
	}
	return a.render(c, http.StatusOK, "edit-preferences", "Communication preferences", map[string]any{"content": content})
}

func (a *App) editPreferencesPost(c *fiber.Ctx) error {
	for _, f := range []string{"newsletter", "email_unsubscribe", "no_longer_want_to_receive", "never_signed_up", "inappropriate", "spam"} {
		setFlag(c, f)
	}
	ensureField(c, "other")
	r, err := call(c, a.acct.Endpoint("update-communication-preferences"))
	if err != nil {
		return err
	}
	switch str(r.Get("update_communication_preferences")) {
	case "success":
		return redirect(c, "/account/?notice=preferences-saved")
	case "user_not_authenticated":
		return redirect(c, "/login?next=account/edit-communication-preferences&message=not-authenticated")
	}
	content, ok, err := a.member(c, "account/edit-communication-preferences")
	if !ok {
		return err
	}
	msg := "Please choose either the newsletter or no e-mail at all."
	if get(r, "errors.data_missing") != nil {
		msg = str(get(r, "errors.data_missing"))
	}
	return a.render(c, http.StatusOK, "edit-preferences", "Communication preferences", map[string]any{"content": content, "error": msg})
}

func (a *App) changePassword(c *fiber.Ctx) error {
	if _, ok, err := a.member(c, "account/change-password"); !ok {
		return err
	}
	return a.render(c, http.StatusOK, "change-password", "Change password", nil)
}

func (a *App) changePasswordPost(c *fiber.Ctx) error {
	r, err := call(c, a.acct.Endpoint("change-my-password"))
	if err != nil {
		return err
	}
	switch str(r.Get("change_my_password")) {
	case "success":
		return redirect(c, "/account/?notice=password-updated")
	case "user_not_authenticated":
		return redirect(c, "/login?next=account/change-password&message=not-authenticated")
	}
	return a.render(c, http.StatusOK, "change-password", "Change password", map[string]any{"errors": obj(r, "errors"),
		"error": "Your password was not changed."})
}

// unsubscribe is the mail's unsubscribe link: U15 looks the token up.
func (a *App) unsubscribe(c *fiber.Ctx) error {
	token, field := c.Query("token"), "token"
	if token == "" {
		token, field = c.Query("pr_token"), "pr_token"
	}
	r, err := call(c, a.acct.Endpoint("email-unsubscribe-lookup"))
	if err != nil {
		return err
	}
	data := map[string]any{"step": "confirm", "token": token, "field": field, "email": str(r.Get("email_address"))}
	if str(r.Get("email_unsubscribe_lookup")) != "success" {
		data = map[string]any{"step": "error", "error": unsubscribeMessage(apiError(r))}
	}
	return a.render(c, http.StatusOK, "unsubscribe", "Unsubscribe", data)
}

func unsubscribeMessage(code string) string {
	switch code {
	case "email-address-already-unsubscribed":
		return "This address is already unsubscribed: we send it no more newsletters."
	case "token-required", "member-not-found", "token-altered":
		return "This unsubscribe link is not valid. Please use the link of a more recent e-mail."
	}
	return "This unsubscribe link is not valid."
}

// unsubscribePost is "yes, remove me" (U16) and then the optional reasons
// (U17), with the new token U16 gave.
func (a *App) unsubscribePost(c *fiber.Ctx) error {
	field := "token"
	if formValue(c, "token") == "" {
		field = "pr_token"
	}
	if formValue(c, "action") == "why" {
		for _, f := range []string{"no_longer_want_to_receive", "never_signed_up", "inappropriate", "spam"} {
			setFlag(c, f)
		}
		ensureField(c, "other")
		r, err := call(c, a.acct.Endpoint("email-unsubscribe-why"))
		if err != nil {
			return err
		}
		if str(r.Get("email_unsubscribe_why")) != "success" {
			return a.render(c, http.StatusOK, "unsubscribe", "Unsubscribe", map[string]any{"step": "error", "error": unsubscribeMessage(apiError(r))})
		}
		return a.render(c, http.StatusOK, "unsubscribe", "Unsubscribe", map[string]any{"step": "done"})
	}
	r, err := call(c, a.acct.Endpoint("email-unsubscribe-confirm"))
	if err != nil {
		return err
	}
	if str(r.Get("email_unsubscribe_confirm")) != "success" {
		return a.render(c, http.StatusOK, "unsubscribe", "Unsubscribe", map[string]any{"step": "error", "error": unsubscribeMessage(apiError(r))})
	}
	return a.render(c, http.StatusOK, "unsubscribe", "Unsubscribe", map[string]any{"step": "why", "field": field,
		"token": str(r.Get("token")), "email": str(r.Get("email_address"))})
}

// static is a page of the tenant's own text (about, privacy policy, terms
// of sale).
func (a *App) static(name, title string) fiber.Handler {
	return func(c *fiber.Ctx) error { return a.render(c, http.StatusOK, name, title, nil) }
}

func (a *App) termsOfUse(c *fiber.Ctx) error {
	return a.render(c, http.StatusOK, "terms-of-use", "Terms of use", errorData(c, nil))
}

// termsOfUsePost agrees to the newest terms of use (U19).
func (a *App) termsOfUsePost(c *fiber.Ctx) error {
	r, err := call(c, a.acct.Endpoint("terms-of-use-agree"))
	if err != nil {
		return err
	}
	switch res := str(r.Get("terms_of_use_agree")); res {
	case "success":
		return redirect(c, localNext(formValue(c, "next"), "/")+noticeSep(formValue(c, "next"))+"notice=terms-agreed")
	case "user_not_authenticated":
		return redirect(c, "/login?next=terms-of-use&message=not-authenticated")
	default:
		return redirect(c, "/terms-of-use?error="+url.QueryEscape(apiError(r)))
	}
}

func noticeSep(next string) string {
	if strings.Contains(next, "?") {
		return "&"
	}
	return "?"
}

func (a *App) contact(c *fiber.Ctx) error {
	return a.render(c, http.StatusOK, "contact", "Contact us", map[string]any{"form": map[string]string{}})
}

// contactPost is the chat/lead form (U20).
func (a *App) contactPost(c *fiber.Ctx) error {
	r, err := call(c, a.acct.Endpoint("put-chat-message"))
	if err != nil {
		return err
	}
	if str(r.Get("put_chat_message")) == "true" {
		return redirect(c, "/contact?notice=message-sent")
	}
	return a.render(c, http.StatusOK, "contact", "Contact us", map[string]any{"errors": obj(r, "errors"),
		"error": "Please correct the fields marked below.", "form": map[string]string{"name": formValue(c, "name"),
			"email_address": formValue(c, "email_address"), "message": formValue(c, "message")}})
}

// cookieNoticePost dismisses the cookie notice without script: the same
// client-side cookie the original's banner set.
func (a *App) cookieNoticePost(c *fiber.Ctx) error {
	c.Cookie(&fiber.Cookie{Name: "termsofserviceagreed", Value: "true", Path: "/", MaxAge: 31536000,
		Expires: time.Now().Add(365 * 24 * time.Hour), SameSite: fiber.CookieSameSiteLaxMode})
	return redirect(c, localNext(formValue(c, "next"), "/"))
}
