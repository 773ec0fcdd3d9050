package account

import (
	"errors"
	"fmt"
	"html"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/cart"
)

// U1: hand out the CSRF cookie.
func (a *App) token(c *fiber.Ctx) error {
	tok := csrf.Ensure(c)
	return reply(c, fiber.Map{"token": `<input type="hidden" name="csrfmiddlewaretoken" value="` + html.EscapeString(tok) + `">`})
}

// clientEventCookie (re)sets anonymousclientevent: one year, readable by
// the page, the tenant's cookie domain (empty: host-only, §12 Q22).
func clientEventCookie(c *fiber.Ctx, value string) {
	c.Cookie(&fiber.Cookie{
		Name:    ClientEventCookie,
		Value:   value,
		Path:    "/",
		Domain:  server.Tenant(c).Settings.CookieDomain,
		MaxAge:  31536000,
		Expires: time.Now().Add(31536000 * time.Second),
	})
}

// U2: who is signed in, for the page header. One batch reads the
// client-event switch, the session's member and its cart's line count, and
// the anonymous cart's line count: which count is shown depends on whether
// the session holds, checked on the member row read.
func (a *App) loggedIn(c *fiber.Ctx) error {
	csrf.Ensure(c)
	r, err := a.request(c)
	if err != nil {
		return err
	}
	sess := sessions.Get(c)
	var (
		logEvents              bool
		m                      *member
		memberItems, anonItems int
		b                      = &pgx.Batch{}
	)
	b.Queue(logEventsSQL).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&logEvents); err != nil {
			return fmt.Errorf("clientevent configuration: %w", err)
		}
		return nil
	})
	if sess.UserID > 0 {
		b.Queue(memberByAccountSQL, sess.UserID).QueryRow(func(row pgx.Row) (err error) {
			m, err = scanMember(row)
			return err
		})
		cart.QueueLineCount(b, cart.OfAccount(sess.UserID), &memberItems)
	}
	if id := cart.CookieID(c, r.keys...); id != "" {
		cart.QueueLineCount(b, cart.OfAnonymous(id), &anonItems)
	}
	if err := a.conn(r, func(conn *pgxpool.Conn) error { return conn.SendBatch(r.ctx, b).Close() }); err != nil {
		return err
	}
	if sess.UserID > 0 {
		m = holds(r, sess, m)
	}
	if m == nil {
		if !r.signer.ValidClientEventCookie(c.Cookies(ClientEventCookie)) {
			clientEventCookie(c, r.signer.ClientEventCookieValue())
		}
		return reply(c, fiber.Map{"logged_in": false, "log_client_events": logEvents, "client_event_id": "null", "cart_item_count": anonItems})
	}
	return reply(c, fiber.Map{
		"logged_in": true, "log_client_events": logEvents, "client_event_id": m.AccountID,
		"member_initials": firstRune(m.FirstName) + firstRune(m.LastName),
		"first_name":      m.FirstName, "last_name": m.LastName, "email_address": m.Email, "cart_item_count": memberItems,
	})
}

const logEventsSQL = `SELECT log_client_events FROM clientevent_configuration WHERE id = 1`

func firstRune(s string) string {
	if s == "" {
		return ""
	}
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

// U3: log in, then fold the anonymous cart into the member's.
func (a *App) login(c *fiber.Ctx) error {
	f, err := fields(c, "username", "password", "remember_me")
	if err != nil {
		return fail(c, err)
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	remember := f["remember_me"] == "true"
	if !remember {
		// Upstream made the anonymous session a browser-session one first,
		// whatever the outcome.
		sessions.Get(c).SetPersistent(false)
	}
	m, err := a.authenticate(r, f["username"], f["password"])
	if err != nil {
		return err
	}
	if m == nil {
		return reply(c, fiber.Map{"login": "false"})
	}
	anon := cart.CookieID(c, r.keys...)
	err = a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE account SET last_login = $2 WHERE id = $1`, m.AccountID, a.now()); err != nil {
			return err
		}
		return cart.MergeAnonymousIntoMember(r.ctx, tx, anon, m.MemberID)
	})
	if err != nil {
		return err
	}
	if err := a.logIn(r, m, remember); err != nil {
		return err
	}
	cart.ExpireCookie(c)
	return reply(c, fiber.Map{"login": "true"})
}

// authenticate checks a username and password: exact username, active
// member accounts only. An unknown username costs a dummy verification, so
// timing does not tell which usernames exist. A correct password stored
// with an older scheme or cost is re-hashed.
func (a *App) authenticate(r *req, username, password string) (*member, error) {
	var m *member
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var err error
		m, err = memberByUsername(r.ctx, c, username)
		return err
	})
	if err != nil {
		return nil, err
	}
	if m == nil || !m.IsActive {
		a.hasher.VerifyDummy(password)
		return nil, nil
	}
	ok, err := a.hasher.Verify(m.PasswordHash, password)
	if err != nil {
		a.log.Warn("stored password hash unreadable", "tenant", r.tenant.Slug, "account_id", m.AccountID, "err", err)
		return nil, nil
	}
	if !ok {
		return nil, nil
	}
	if a.hasher.NeedsRehash(m.PasswordHash) {
		hash, err := a.hasher.Hash(password)
		if err != nil {
			return nil, err
		}
		err = a.conn(r, func(c *pgxpool.Conn) error {
			_, err := c.Exec(r.ctx, `UPDATE account SET password_hash = $2 WHERE id = $1 AND password_hash = $3`,
				m.AccountID, hash, m.PasswordHash)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("re-hash password: %w", err)
		}
		m.PasswordHash = hash
	}
	return m, nil
}

// U4: log out; a fresh anonymous client-event id follows.
func (a *App) logout(c *fiber.Ctx) error {
	r, err := a.request(c)
	if err != nil {
		return err
	}
	m, err := a.signedIn(r)
	if err != nil {
		return err
	}
	if m == nil {
		return reply(c, fiber.Map{"logout": "user_not_authenticated"})
	}
	if err := sessions.Destroy(c); err != nil {
		return err
	}
	cart.ExpireCookie(c)
	clientEventCookie(c, r.signer.ClientEventCookieValue())
	return reply(c, fiber.Map{"logout": "true"})
}

// U6: create an account, sign it in and adopt the anonymous cart.
func (a *App) createAccount(c *fiber.Ctx) error {
	f, err := fields(c, "firstname", "lastname", "username", "email_address", "password", "confirm_password", "newsletter", "remember_me")
	if err != nil {
		return fail(c, err)
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	var taken bool
	if usernameCharsPattern.MatchString(f["username"]) {
		err = a.conn(r, func(conn *pgxpool.Conn) error {
			taken, err = usernameTaken(r.ctx, conn, f["username"])
			return err
		})
		if err != nil {
			return err
		}
	}
	errs := map[string]FieldResult{
		"firstname":     ValidateName(f["firstname"], nameMaxFirst),
		"lastname":      ValidateName(f["lastname"], nameMaxLast),
		"username":      ValidateUsername(f["username"], func(string) bool { return taken }),
		"email-address": ValidateEmail(f["email_address"]),
		"password":      ValidatePassword(f["password"], f["confirm_password"]),
	}
	if allOK(errs) {
		errs["password"] = PasswordRules(f["password"], PasswordUser{
			Username: f["username"], FirstName: f["firstname"], LastName: f["lastname"], Email: f["email_address"]})
	}
	if !allOK(errs) {
		return reply(c, fiber.Map{"create_account": "false", "errors": errs})
	}
	hash, err := a.hasher.Hash(f["password"])
	if err != nil {
		return err
	}
	var m *member
	err = a.tx(r, func(tx pgx.Tx) error {
		var err error
		m, err = a.insertMember(r, tx, f, hash)
		return err
	})
	if isUniqueViolation(err, "account_username_key") {
		errs["username"] = FieldResult{errUsernameTaken}
		return reply(c, fiber.Map{"create_account": "false", "errors": errs})
	}
	if err != nil {
		return err
	}
	if err := a.logIn(r, m, f["remember_me"] == "true"); err != nil {
		return err
	}
	return reply(c, fiber.Map{"create_account": "true"})
}

// insertMember writes the account, its member row, the terms agreement,
// the prospect conversion, the cart adoption and the welcome mail (§4 U6).
func (a *App) insertMember(r *req, tx pgx.Tx, f map[string]string, hash string) (*member, error) {
	ctx, now := r.ctx, a.now()
	var accountID, memberID int64
	err := tx.QueryRow(ctx, `INSERT INTO account (username, password_hash, first_name, last_name, email, date_joined, last_login)
VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`,
		f["username"], hash, f["firstname"], f["lastname"], f["email_address"], now).Scan(&accountID)
	if err != nil {
		return nil, err
	}
	unsub, token := newUnsubscribe(r.signer)
	err = tx.QueryRow(ctx, `INSERT INTO member (account_id, newsletter_subscriber, email_unsubscribe_string, email_unsubscribe_string_signed, mb_cd)
VALUES ($1, $2, $3, $4, $5) RETURNING id`, accountID, f["newsletter"] == "true", unsub, token, RandomString(20)).Scan(&memberID)
	if err != nil {
		return nil, fmt.Errorf("insert member: %w", err)
	}
	termsID, _, _, err := latestTerms(ctx, tx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO terms_of_use_agreement (member_id, terms_of_use_version_id, agreed_date_time) VALUES ($1, $2, $3)`,
		memberID, termsID, now); err != nil {
		return nil, fmt.Errorf("agree to terms: %w", err)
	}
	if err := cart.AdoptAnonymous(ctx, tx, cart.CookieID(r.c, r.keys...), memberID); err != nil {
		return nil, err
	}
	if err := convertProspect(r, tx, f["email_address"], accountID, memberID, now); err != nil {
		return nil, err
	}
	code, err := newVerification(ctx, tx, r.signer, memberID)
	if err != nil {
		return nil, err
	}
	m, err := memberByAccount(ctx, tx, accountID)
	if err != nil || m == nil {
		return nil, errors.Join(err, errors.New("new member vanished"))
	}
	d := emailData{FirstName: m.FirstName, LastName: m.LastName, Username: m.Username,
		Link: link(origin(r.tenant), "/account/", "email_verification_code", code)}
	return m, r.queue(tx, kindWelcome, []string{mailbox(m.FirstName+" "+m.LastName, m.Email)}, d)
}

// convertProspect links a prospect with the new member's address to the
// member (§4 U6 step 6): its orders and the chat messages from the address.
func convertProspect(r *req, tx pgx.Tx, email string, accountID, memberID int64, now time.Time) error {
	var prospectID int64
	err := tx.QueryRow(r.ctx, `UPDATE prospect SET
    converted_date_time = coalesce(converted_date_time, $2),
    swa_comment = CASE WHEN coalesce(swa_comment, '') = '' THEN $3 ELSE swa_comment || '. ' || $3 END,
    email_unsubscribed = true
WHERE email = $1 RETURNING id`, email, now, fmt.Sprintf("Prospect converted by creating user id %d.", accountID)).Scan(&prospectID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("convert prospect: %w", err)
	}
	if _, err := tx.Exec(r.ctx, `UPDATE customer_order SET member_id = $2 WHERE prospect_id = $1`, prospectID, memberID); err != nil {
		return fmt.Errorf("convert prospect orders: %w", err)
	}
	if _, err := tx.Exec(r.ctx, `UPDATE chat_message SET member_id = $2 WHERE email_address = $1`, email, memberID); err != nil {
		return fmt.Errorf("convert prospect chat: %w", err)
	}
	return nil
}

func allOK(errs map[string]FieldResult) bool {
	for _, r := range errs {
		if !r.OK() {
			return false
		}
	}
	return true
}

func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (constraint == "" || pe.ConstraintName == constraint)
}
