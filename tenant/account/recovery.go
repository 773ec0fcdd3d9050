package account

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// U9: mail a reset link when username and address match; the answer is
// the same either way, so it tells nothing about accounts.
func (a *App) resetPassword(c *fiber.Ctx) error {
	f, err := fields(c, "username", "email_address")
	if err != nil {
		return fail(c, err)
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		m, err := memberByUsername(r.ctx, tx, f["username"])
		if err != nil || m == nil || !m.IsActive || !strings.EqualFold(m.Email, f["email_address"]) {
			return err
		}
		str := RandomString(20)
		code := r.signer.ResetCode(str)
		if _, err := tx.Exec(r.ctx, `UPDATE member SET reset_password_string = $2, reset_password_string_signed = $3 WHERE id = $1`,
			m.MemberID, str, code); err != nil {
			return err
		}
		return r.queue(tx, kindPasswordReset, []string{mailbox(m.FirstName+" "+m.LastName, m.Email)}, emailData{
			FirstName: m.FirstName, LastName: m.LastName, Username: m.Username,
			Link: link(origin(r.tenant), "/set-new-password", "password_reset_code", code)})
	})
	if err != nil {
		return err
	}
	return reply(c, fiber.Map{"reset_password": "success"})
}

// U10: set a new password with a mailed reset code. The code works once
// (its stored string is cleared) and for an hour; success signs the member
// out everywhere.
func (a *App) setNewPassword(c *fiber.Ctx) error {
	const key = "set_new_password"
	f, err := fields(c, "username")
	if err != nil {
		return fail(c, err)
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	var m *member
	err = a.conn(r, func(conn *pgxpool.Conn) error {
		m, err = memberByUsername(r.ctx, conn, f["username"])
		return err
	})
	if err != nil {
		return err
	}
	if m == nil {
		return reply(c, fiber.Map{key: "username-not-found", "error": "No account with that username could be found."})
	}
	code, err := fields(c, "password_reset_code")
	if err != nil {
		return fail(c, err)
	}
	str, err := r.signer.CheckResetCode(code["password_reset_code"])
	if err != nil {
		return reply(c, fiber.Map{key: "signature-invalid"})
	}
	if m.ResetString == nil || *m.ResetString != str {
		return reply(c, fiber.Map{key: "code-doesnt-match"})
	}
	pw, err := fields(c, "new_password", "confirm_new_password")
	if err != nil {
		return fail(c, err)
	}
	res := ValidatePassword(pw["new_password"], pw["confirm_new_password"])
	if res.OK() {
		res = PasswordRules(pw["new_password"], m.passwordUser())
	}
	if !res.OK() {
		return reply(c, fiber.Map{key: "password-error", "errors": fiber.Map{"new-password": res}})
	}
	hash, err := a.hasher.Hash(pw["new_password"])
	if err != nil {
		return err
	}
	outcome := "code-doesnt-match"
	err = a.tx(r, func(tx pgx.Tx) error {
		// Clearing the string only where it is still the one checked makes
		// two concurrent uses of one code succeed once.
		tag, err := tx.Exec(r.ctx, `UPDATE member SET reset_password_string = NULL, reset_password_string_signed = NULL
WHERE id = $1 AND reset_password_string = $2`, m.MemberID, str)
		if err != nil || tag.RowsAffected() != 1 {
			return err
		}
		if err := setPassword(r.ctx, tx, m.AccountID, hash); err != nil {
			return err
		}
		outcome = "success"
		return r.queue(tx, kindPasswordChanged, []string{mailbox(m.FirstName+" "+m.LastName, m.Email)}, emailData{
			FirstName: m.FirstName, LastName: m.LastName, Username: m.Username, Link: origin(r.tenant) + "/login"})
	})
	if err != nil {
		return err
	}
	if outcome == "success" {
		if err := a.endSessions(r, m.AccountID); err != nil {
			return err
		}
	}
	return reply(c, fiber.Map{key: outcome})
}

// U11: mail the username to every account with exactly this address.
func (a *App) forgotUsername(c *fiber.Ctx) error {
	f, err := fields(c, "email_address")
	if err != nil {
		return fail(c, err)
	}
	r, err := a.request(c)
	if err != nil {
		return err
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.ctx, `SELECT username, first_name, last_name, email FROM account WHERE email = $1 AND email <> '' ORDER BY id`,
			f["email_address"])
		if err != nil {
			return err
		}
		type acct struct{ username, first, last, email string }
		var list []acct
		for rows.Next() {
			var x acct
			if err := rows.Scan(&x.username, &x.first, &x.last, &x.email); err != nil {
				rows.Close()
				return err
			}
			list = append(list, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, x := range list {
			if err := r.queue(tx, kindForgotUsername, []string{mailbox(x.first+" "+x.last, x.email)}, emailData{
				FirstName: x.first, LastName: x.last, Username: x.username, Link: origin(r.tenant) + "/login"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return reply(c, fiber.Map{"forgot_username": "success"})
}
