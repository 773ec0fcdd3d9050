package admin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// signIn checks an address and password and starts a session: a full one,
// or one waiting for the second factor when the staff member has TOTP.
// Every refusal is errSignIn, whether the address exists or not, and costs
// a password verification either way. MaxFailures consecutive failures
// lock the account for Lockout; a sign-in while locked fails even with the
// right password.
func (a *App) signIn(r *req, email, password string) (*staffSession, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return nil, required("email")
	}
	if password == "" {
		return nil, required("password")
	}
	var s *staffRow
	if err := a.conn(r, func(c *pgxpool.Conn) error {
		var err error
		s, err = staffByEmail(r.ctx, c, email)
		return err
	}); err != nil {
		return nil, err
	}
	now := a.now()
	if s == nil || !s.Active || (s.LockedUntil != nil && s.LockedUntil.After(now)) {
		a.hasher.VerifyDummy(password)
		return nil, errSignIn
	}
	ok, err := a.hasher.Verify(s.PasswordHash, password)
	if err != nil {
		a.log.Warn("stored staff password hash unreadable", "tenant", r.tenant.Slug, "staff_id", s.ID, "err", err)
	}
	if !ok {
		if err := a.failed(r, s); err != nil {
			return nil, err
		}
		return nil, errSignIn
	}
	stage := stageFull
	if s.TOTPEnabled {
		stage = stageTOTP
	}
	// With a second factor the failures are only forgiven once it passes:
	// a known password must not reset the count of wrong codes.
	if stage == stageFull {
		err = a.tx(r, func(tx pgx.Tx) error {
			if _, err := tx.Exec(r.ctx, `UPDATE staff SET failed_logins = 0, locked_until = NULL, last_login = $2 WHERE id = $1`, s.ID, now); err != nil {
				return err
			}
			return writeAudit(r.ctx, tx, auditEntry{StaffID: s.ID, Actor: s.Email, Action: "session.signed_in",
				TargetType: "staff", TargetID: s.ID, ClientIP: r.clientIP, RequestID: r.requestID})
		})
		if err != nil {
			return nil, fmt.Errorf("sign in: %w", err)
		}
	}
	return a.startSession(r, s, stage)
}

// failed counts one failed password or code, locking the account when the
// count reaches MaxFailures (the lock is audited).
func (a *App) failed(r *req, s *staffRow) error {
	return a.tx(r, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(r.ctx, `UPDATE staff SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins`,
			s.ID).Scan(&n); err != nil {
			return fmt.Errorf("count failed sign-in: %w", err)
		}
		if n < a.maxFailures {
			return nil
		}
		until := a.now().Add(a.lockout)
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET failed_logins = 0, locked_until = $2 WHERE id = $1`, s.ID, until); err != nil {
			return fmt.Errorf("lock staff: %w", err)
		}
		return writeAudit(r.ctx, tx, auditEntry{Actor: "system", Action: "staff.locked", TargetType: "staff", TargetID: s.ID,
			After: map[string]any{"locked_until": until, "failures": n}, ClientIP: r.clientIP, RequestID: r.requestID})
	})
}

// signInTOTP completes a sign-in waiting for its second factor with a TOTP
// code or a recovery code. Wrong codes count as failed sign-ins.
func (a *App) signInTOTP(r *req, code, recovery string) (*staffSession, error) {
	s := r.who.staff
	if code == "" && recovery == "" {
		return nil, required("code")
	}
	if s.LockedUntil != nil && s.LockedUntil.After(a.now()) {
		return nil, errSignIn
	}
	var ok bool
	var err error
	if recovery != "" {
		ok, err = a.useRecoveryCode(r, s, recovery)
	} else {
		ok, err = a.checkTOTP(r, s, code)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		if err := a.failed(r, s); err != nil {
			return nil, err
		}
		if recovery != "" {
			return nil, &apiError{Status: fiber.StatusUnauthorized, Code: "code-invalid", Detail: "the recovery code is wrong or was already used", Field: "recovery_code"}
		}
		return nil, errTOTP
	}
	how := "totp"
	if recovery != "" {
		how = "recovery_code"
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET failed_logins = 0, locked_until = NULL, last_login = $2 WHERE id = $1`, s.ID, a.now()); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "session.signed_in", TargetType: "staff", TargetID: s.ID,
			After: map[string]any{"second_factor": how}})
	})
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	return a.startSession(r, s, stageFull)
}

func (a *App) signOut(r *req) error {
	err := a.tx(r, func(tx pgx.Tx) error {
		return r.audit(tx, auditEntry{Action: "session.signed_out", TargetType: "staff", TargetID: r.who.staff.ID})
	})
	if err != nil {
		return err
	}
	return a.endSession(r)
}

// changePassword sets a new password after checking the current one, ends
// every session of the staff member and signs this one in afresh.
func (a *App) changePassword(r *req, current, next, confirm string) error {
	s := r.who.staff
	if current == "" {
		return required("current_password")
	}
	ok, _ := a.hasher.Verify(s.PasswordHash, current)
	if !ok {
		return errBadPass
	}
	if ae := checkPassword(next, confirm, s.Email, s.Name); ae != nil {
		ae.Field = "new_password"
		return ae
	}
	if next == current {
		return invalid("new_password", "the new password must differ from the current one")
	}
	if err := a.setPassword(r, s.ID, next, "staff.password_changed"); err != nil {
		return err
	}
	fresh, err := a.staff(r, s.ID)
	if err != nil || fresh == nil {
		return errors.Join(err, errors.New("staff vanished"))
	}
	r.who.staff = fresh
	sess, err := a.startSession(r, fresh, stageFull)
	if err != nil {
		return err
	}
	r.who.sess = sess
	return nil
}

// setPassword stores a new hash (clearing any lock), audits it, and ends
// every session of the staff member.
func (a *App) setPassword(r *req, staffID int64, pw, action string) error {
	hash, err := a.hasher.Hash(pw)
	if err != nil {
		return err
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET password_hash = $2, failed_logins = 0, locked_until = NULL, updated_at = now() WHERE id = $1`,
			staffID, hash); err != nil {
			return err
		}
		e := auditEntry{Action: action, TargetType: "staff", TargetID: staffID}
		if r.who == nil {
			e.StaffID = staffID
			e.Actor = "password reset link"
		}
		return r.audit(tx, e)
	})
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return a.endAllSessions(r.ctx, r.tenant.ID, staffID)
}

func (a *App) staff(r *req, id int64) (*staffRow, error) {
	var s *staffRow
	err := a.conn(r, func(c *pgxpool.Conn) error {
		var err error
		s, err = staffByID(r.ctx, c, id)
		return err
	})
	return s, err
}

// API handlers.

func (a *App) apiSignIn(c *fiber.Ctx) error {
	var b struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	sess, err := a.signIn(a.r(c), b.Email, b.Password)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"totp_required": sess.Stage == stageTOTP, "csrf_token": sess.CSRF})
}

func (a *App) apiSignInTOTP(c *fiber.Ctx) error {
	var b struct {
		Code         string `json:"code"`
		RecoveryCode string `json:"recovery_code"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	sess, err := a.signInTOTP(a.r(c), b.Code, b.RecoveryCode)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"totp_required": false, "csrf_token": sess.CSRF})
}

func (a *App) apiSignOut(c *fiber.Ctx) error {
	if err := a.signOut(a.r(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (a *App) apiMe(c *fiber.Ctx) error {
	r := a.r(c)
	out := fiber.Map{"staff": r.who.staff.public(), "via": "session"}
	if r.who.tokenID != 0 {
		out["via"] = "token"
	} else {
		out["csrf_token"] = r.who.sess.CSRF
	}
	return c.JSON(out)
}

func (a *App) apiChangePassword(c *fiber.Ctx) error {
	var b struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	r := a.r(c)
	if err := a.changePassword(r, b.Current, b.New, b.New); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"csrf_token": r.who.sess.CSRF})
}
