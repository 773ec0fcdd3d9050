package admin

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what every authenticator app understands.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// recoveryCodeCount codes are handed out per set.
const recoveryCodeCount = 10

// sealKey derives the tenant's TOTP sealing key from its secret key: HKDF
// with SHA-256, bound to the tenant id, so the key opens nothing else.
func sealKey(tenantKey []byte, tenantID int64) ([]byte, error) {
	return hkdf.Key(sha256.New, tenantKey, nil, "swa/admin/totp-secret/"+strconv.FormatInt(tenantID, 10), 32)
}

// seal encrypts a TOTP secret with AES-256-GCM (nonce || ciphertext); the
// staff id is the additional data, so a sealed secret only opens on its row.
func seal(key []byte, staffID int64, secret string) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, []byte(secret), staffAAD(staffID)), nil
}

func open(key []byte, staffID int64, sealed []byte) (string, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return "", err
	}
	if len(sealed) < gcm.NonceSize() {
		return "", errors.New("sealed TOTP secret too short")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], staffAAD(staffID))
	if err != nil {
		return "", fmt.Errorf("open TOTP secret: %w", err)
	}
	return string(plain), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func staffAAD(id int64) []byte { return []byte("staff:" + strconv.FormatInt(id, 10)) }

func (r *req) sealKey() ([]byte, error) { return sealKey(r.key, r.tenant.ID) }

// openTOTP opens s's sealed secret under the tenant's key, else under a key
// a rotation replaced; then resealed is the secret sealed under the current
// key, for the caller to store (nil when it opened under the current one).
func (r *req) openTOTP(s *staffRow) (secret string, resealed []byte, err error) {
	key, err := r.sealKey()
	if err != nil {
		return "", nil, err
	}
	secret, err = open(key, s.ID, s.TOTPSecret)
	if err == nil {
		return secret, nil, nil
	}
	for _, old := range r.oldKeys {
		k, kerr := sealKey(old, r.tenant.ID)
		if kerr != nil {
			continue
		}
		if v, oerr := open(k, s.ID, s.TOTPSecret); oerr == nil {
			resealed, err := seal(key, s.ID, v)
			return v, resealed, err
		}
	}
	return "", nil, err
}

// checkTOTP accepts a code of the current 30-second step or the one either
// side, once: the step is recorded, and a code of that step or an earlier
// one is refused afterwards (the UPDATE decides, so two requests racing with
// one code cannot both pass).
func (a *App) checkTOTP(r *req, s *staffRow, code string) (bool, error) {
	code = strings.TrimSpace(code)
	if len(code) != 6 || s.TOTPSecret == nil {
		return false, nil
	}
	secret, resealed, err := r.openTOTP(s)
	if err != nil {
		return false, err
	}
	now := a.now().Unix() / 30
	for _, step := range []int64{now - 1, now, now + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*30, 0), totpOpts)
		if err != nil {
			return false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		var taken bool
		err = a.tx(r, func(tx pgx.Tx) error {
			tag, err := tx.Exec(r.ctx, `UPDATE staff SET totp_last_step = $2, totp_secret = coalesce($3, totp_secret)
WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)`, s.ID, step, resealed)
			taken = err == nil && tag.RowsAffected() == 1
			return err
		})
		return taken, err
	}
	return false, nil
}

// enrolTOTP stores a new, not yet enabled secret and returns it with its
// otpauth URL and QR code. It is enabled by confirmTOTP.
func (a *App) enrolTOTP(r *req) (fiber.Map, error) {
	s := r.who.staff
	if s.TOTPEnabled {
		return nil, &apiError{Status: fiber.StatusConflict, Code: "totp-enabled", Detail: "the second factor is already on; turn it off first"}
	}
	issuer := r.tenant.DisplayName
	if issuer == "" {
		issuer = r.tenant.Slug
	}
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer + " back office", AccountName: s.Email})
	if err != nil {
		return nil, fmt.Errorf("totp secret: %w", err)
	}
	key, err := r.sealKey()
	if err != nil {
		return nil, err
	}
	sealed, err := seal(key, s.ID, k.Secret())
	if err != nil {
		return nil, err
	}
	img, err := k.Image(240, 240)
	if err != nil {
		return nil, fmt.Errorf("totp qr: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	err = a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET totp_secret = $2, totp_last_step = NULL, updated_at = now() WHERE id = $1`, s.ID, sealed); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "totp.enrolment_started", TargetType: "staff", TargetID: s.ID})
	})
	if err != nil {
		return nil, fmt.Errorf("enrol totp: %w", err)
	}
	return fiber.Map{"secret": k.Secret(), "otpauth_url": k.URL(),
		"qr_png": "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// confirmTOTP turns the enrolled secret on once a code from it checks out,
// and returns a first set of recovery codes.
func (a *App) confirmTOTP(r *req, code string) ([]string, error) {
	s, err := a.staff(r, r.who.staff.ID)
	if err != nil {
		return nil, err
	}
	if s.TOTPEnabled {
		return nil, &apiError{Status: fiber.StatusConflict, Code: "totp-enabled", Detail: "the second factor is already on"}
	}
	if s.TOTPSecret == nil {
		return nil, &apiError{Status: fiber.StatusConflict, Code: "totp-not-enrolled", Detail: "start the enrolment first"}
	}
	if code == "" {
		return nil, required("code")
	}
	ok, err := a.checkTOTP(r, s, code)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errTOTP
	}
	var codes []string
	err = a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET totp_enabled = true, updated_at = now() WHERE id = $1`, s.ID); err != nil {
			return err
		}
		var err error
		if codes, err = replaceRecoveryCodes(r, tx, s.ID); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "totp.enabled", TargetType: "staff", TargetID: s.ID,
			Before: map[string]any{"totp_enabled": false}, After: map[string]any{"totp_enabled": true}})
	})
	if err != nil {
		return nil, fmt.Errorf("confirm totp: %w", err)
	}
	return codes, nil
}

// disableTOTP turns the second factor off, with the password as proof.
func (a *App) disableTOTP(r *req, password string) error {
	s := r.who.staff
	if ok, _ := a.hasher.Verify(s.PasswordHash, password); !ok {
		e := *errBadPass
		e.Field = "password"
		return &e
	}
	return a.tx(r, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE staff SET totp_enabled = false, totp_secret = NULL, totp_last_step = NULL, updated_at = now() WHERE id = $1`, s.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(r.ctx, `DELETE FROM staff_recovery_code WHERE staff_id = $1`, s.ID); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "totp.disabled", TargetType: "staff", TargetID: s.ID,
			Before: map[string]any{"totp_enabled": s.TOTPEnabled}, After: map[string]any{"totp_enabled": false}})
	})
}

// newRecoveryCodes replaces the staff member's recovery codes, with the
// password as proof.
func (a *App) newRecoveryCodes(r *req, password string) ([]string, error) {
	s := r.who.staff
	if ok, _ := a.hasher.Verify(s.PasswordHash, password); !ok {
		e := *errBadPass
		e.Field = "password"
		return nil, &e
	}
	if !s.TOTPEnabled {
		return nil, &apiError{Status: fiber.StatusConflict, Code: "totp-not-enabled", Detail: "recovery codes go with a second factor; turn it on first"}
	}
	var codes []string
	err := a.tx(r, func(tx pgx.Tx) error {
		var err error
		if codes, err = replaceRecoveryCodes(r, tx, s.ID); err != nil {
			return err
		}
		return r.audit(tx, auditEntry{Action: "totp.recovery_codes_replaced", TargetType: "staff", TargetID: s.ID})
	})
	return codes, err
}

// recoveryAlphabet is base32 without padding, lower case: 5 bits a letter.
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// replaceRecoveryCodes stores a new set (digests only) and returns it: ten
// codes of 16 letters (80 bits), shown as four groups of four.
func replaceRecoveryCodes(r *req, tx pgx.Tx, staffID int64) ([]string, error) {
	if _, err := tx.Exec(r.ctx, `DELETE FROM staff_recovery_code WHERE staff_id = $1`, staffID); err != nil {
		return nil, err
	}
	codes := make([]string, recoveryCodeCount)
	for i := range codes {
		b := make([]byte, 10)
		_, _ = rand.Read(b)
		raw := recoveryEncoding.EncodeToString(b)
		codes[i] = raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16]
		if _, err := tx.Exec(r.ctx, `INSERT INTO staff_recovery_code (staff_id, code_hash) VALUES ($1, $2)`,
			staffID, tokenDigest(normalizeRecovery(codes[i]))); err != nil {
			return nil, fmt.Errorf("store recovery code: %w", err)
		}
	}
	return codes, nil
}

func normalizeRecovery(code string) string {
	return strings.Map(func(c rune) rune {
		if c == '-' || c == ' ' {
			return -1
		}
		return c
	}, strings.ToLower(strings.TrimSpace(code)))
}

// useRecoveryCode spends one recovery code.
func (a *App) useRecoveryCode(r *req, s *staffRow, code string) (bool, error) {
	var ok bool
	err := a.tx(r, func(tx pgx.Tx) error {
		tag, err := tx.Exec(r.ctx, `UPDATE staff_recovery_code SET used_at = $3 WHERE staff_id = $1 AND code_hash = $2 AND used_at IS NULL`,
			s.ID, tokenDigest(normalizeRecovery(code)), a.now())
		if err != nil {
			return err
		}
		if ok = tag.RowsAffected() == 1; !ok {
			return nil
		}
		return writeAudit(r.ctx, tx, auditEntry{StaffID: s.ID, Actor: s.Email, Action: "totp.recovery_code_used",
			TargetType: "staff", TargetID: s.ID, ClientIP: r.clientIP, RequestID: r.requestID})
	})
	return ok, err
}

func (a *App) apiTOTPEnrol(c *fiber.Ctx) error {
	out, err := a.enrolTOTP(a.r(c))
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (a *App) apiTOTPConfirm(c *fiber.Ctx) error {
	var b struct {
		Code string `json:"code"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	codes, err := a.confirmTOTP(a.r(c), b.Code)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"recovery_codes": codes})
}

func (a *App) apiTOTPDisable(c *fiber.Ctx) error {
	var b struct {
		Password string `json:"password"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	if err := a.disableTOTP(a.r(c), b.Password); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (a *App) apiRecoveryCodes(c *fiber.Ctx) error {
	var b struct {
		Password string `json:"password"`
	}
	if err := body(c, &b); err != nil {
		return err
	}
	codes, err := a.newRecoveryCodes(a.r(c), b.Password)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"recovery_codes": codes})
}
