package account_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/account"
)

// The fuzz targets drive one form endpoint each through the whole serve
// chain (tenant, sessions, CSRF, handler) against a real tenant database
// shared by every input of the target. Each input says which fields are
// sent (a bit per field) and their values; bit 8 sends them without
// percent-encoding, bit 9 as a JSON body (a type the client never sends),
// bit 15 signs in first where the endpoint is dual. After each input: no
// 5xx, and the database holds no partial rows and no rows the answer did
// not announce.

const (
	bitRaw    = 1 << 8
	bitJSON   = 1 << 9
	bitSigned = 1 << 15
	allFields = 0xff

	fuzzUser     = "fuzz_member"
	fuzzPassword = "Fuzz-Pass-123!"
)

// fuzzState is what an input's checks need: the fixture, the member that
// signs in, and codes valid for it (re-armed before each input).
type fuzzState struct {
	fx         *fixture
	db         *pgxpool.Pool
	memberID   int64
	accountID  int64
	hash       string
	signer     *account.Signer
	resetCode  string
	verifyCode string
	unsubToken string
	termsV2    int64
}

// formTarget is one form endpoint under fuzz.
type formTarget struct {
	path   string
	fields []string
	valid  []string // a value per field that takes the success path
	// signedIn: the endpoint needs a member (JSON-flag style).
	signedIn bool
	// dual: bitSigned decides.
	dual bool
	// extra seeds beyond the generic ones: values per field.
	extra [][]string
	// check judges the rows an answer may have written (after - before).
	check func(s *fuzzState, out map[string]any, delta counts) error
}

// specials are the values every field is tried with in the seed corpus.
// The first seven are also tried in each field alone.
var specials = []string{
	"",                          // empty
	strings.Repeat("a", 10000),  // over-long
	strings.Repeat("é", 300),    // over-long in code points, not bytes
	"Zoë 日本 🎉",                  // unicode
	"a\x00b",                    // NUL
	"\xff\xfe\xfd",              // invalid UTF-8
	"99999999999",               // a number out of every integer range
	"true",                      // a flag where text is expected
	"-1",                        // negative
	"1.5",                       // not an integer
	"' OR 1=1 --",               // SQL-looking
	"%zz&=;",                    // broken escapes when sent raw
	"<script>alert(1)</script>", // markup
	"john@example.com",          // an address
	" 2 ",                       // padded number
}

// fuzzCoordinator is true in the process that only hands inputs to the
// fuzzing workers: it needs the seeds but never runs an input, so it
// builds no fixture (the workers each build theirs).
func fuzzCoordinator() bool {
	fz, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return fz != nil && fz.Value.String() != "" && (w == nil || w.Value.String() != "true")
}

// fuzzing is true under -fuzz (coordinator or worker): the seeds are then
// only a starting point, and fewer make the baseline fit a short -fuzztime;
// plain `go test` runs them all.
func fuzzing() bool {
	fz := flag.Lookup("test.fuzz")
	return fz != nil && fz.Value.String() != ""
}

func fuzzForm(f *testing.F, tg formTarget) {
	f.Helper()
	s := newFuzzState()
	if !fuzzCoordinator() {
		s.setup(f, newFixture(f, map[string]ratelimit.Rate{}))
	}
	valid := tg.valid
	if valid == nil {
		valid = s.validFor(tg.path)
	}
	seed := func(present uint16, vals []string) {
		v := make([]string, 8)
		copy(v, vals)
		f.Add(present, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])
	}
	n := len(tg.fields)
	every := uint16(1<<n - 1)
	seed(every, valid)
	seed(every|bitSigned, valid)
	seed(0, nil)
	seed(every|bitRaw, valid)
	seed(every|bitJSON, valid)
	for i := 0; i < n; i++ {
		seed(every&^(1<<i), valid) // one field missing
		if fuzzing() {
			continue
		}
		for _, sp := range specials[:7] {
			v := append([]string(nil), valid...)
			v[i] = sp
			seed(every, v)
		}
	}
	for _, sp := range specials {
		v := make([]string, n)
		for i := range v {
			v[i] = sp
		}
		seed(every, v)
		if strings.ContainsRune(sp, 0) || strings.Contains(sp, "%") || !utf8.ValidString(sp) {
			seed(every|bitRaw, v) // NUL, invalid UTF-8, broken escapes
		}
	}
	for _, e := range tg.extra {
		seed(every, e)
	}

	f.Fuzz(func(t *testing.T, present uint16, v0, v1, v2, v3, v4, v5, v6, v7 string) {
		vals := []string{v0, v1, v2, v3, v4, v5, v6, v7}
		fx := s.fx
		s.rearm(t)
		b := fx.browser(t, hostA)
		b.call("GET", "/user/token", nil)
		if tg.signedIn || (tg.dual && present&bitSigned != 0) {
			want(t, "sign in", b.post("/user/login", "username", fuzzUser, "password", fuzzPassword, "remember_me", "true"), `{"login":"true"}`)
		}
		before := snapshot(t, s.db)
		status, out := b.send(tg.path, tg.fields, vals, present)
		if status >= 500 {
			t.Fatalf("POST %s = %d %v", tg.path, status, out)
		}
		if status == http.StatusOK && out["user-api-version"] != account.APIVersion {
			t.Fatalf("POST %s = 200 without the API version: %v", tg.path, out)
		}
		after := snapshot(t, s.db)
		if err := partialRows(t, s.db); err != nil {
			t.Fatalf("POST %s %q: %v", tg.path, vals[:n], err)
		}
		delta := after.minus(before)
		if status != http.StatusOK {
			if !delta.zero() {
				t.Fatalf("POST %s = %d but wrote %v", tg.path, status, delta)
			}
			return
		}
		if err := tg.check(s, out, delta); err != nil {
			t.Fatalf("POST %s %q -> %v: %v", tg.path, vals[:n], out, err)
		}
		if other := snapshot(t, fx.dbs[fx.b.ID]); !other.zero() {
			t.Fatalf("tenant B's database was written: %v", other)
		}
	})
}

// send posts the fields whose bit is set.
func (b *browser) send(path string, names, vals []string, present uint16) (int, map[string]any) {
	b.t.Helper()
	form := url.Values{}
	var raw []string
	for i, name := range names {
		if present&(1<<i) == 0 {
			continue
		}
		form.Set(name, vals[i])
		raw = append(raw, name+"="+vals[i])
	}
	switch {
	case present&bitJSON != 0:
		var parts []string
		for k := range form {
			parts = append(parts, fmt.Sprintf("%q:%q", k, form.Get(k)))
		}
		return b.doBody(http.MethodPost, path, "application/json", "{"+strings.Join(parts, ",")+"}")
	case present&bitRaw != 0:
		return b.doBody(http.MethodPost, path, "application/x-www-form-urlencoded", strings.Join(raw, "&"))
	}
	return b.do(http.MethodPost, path, form)
}

// newFuzzState makes the codes the seeds carry; they need only the key.
func newFuzzState() *fuzzState {
	s := &fuzzState{signer: account.NewSigner([]byte(keyA))}
	s.resetCode = s.signer.ResetCode("fuzzresetstring00001")
	s.verifyCode = s.signer.VerificationCode("fuzzverifystring0001")
	s.unsubToken = s.signer.UnsubscribeToken("fuzzunsubstring00001")
	return s
}

// setup signs the fuzz member up on tenant A and arms its codes.
func (s *fuzzState) setup(tb testing.TB, fx *fixture) {
	tb.Helper()
	ctx := context.Background()
	s.fx, s.db = fx, fx.dbs[fx.a.ID]
	b := fx.browser(tb, hostA)
	b.call("GET", "/user/token", nil)
	want(tb, "sign up", b.post("/user/create-account", "firstname", "Fuzz", "lastname", "Member", "username", fuzzUser,
		"email_address", "fuzz@example.com", "password", fuzzPassword, "confirm_password", fuzzPassword,
		"newsletter", "true", "remember_me", "true"), `{"create_account":"true"}`)
	if err := s.db.QueryRow(ctx, `SELECT a.id, m.id, a.password_hash FROM account a JOIN member m ON m.account_id = a.id WHERE a.username = $1`,
		fuzzUser).Scan(&s.accountID, &s.memberID, &s.hash); err != nil {
		tb.Fatal(err)
	}
	if err := s.db.QueryRow(ctx, `INSERT INTO terms_of_use_version (version, version_note, publication_date_time)
VALUES (2, 'Second', now()) RETURNING id`).Scan(&s.termsV2); err != nil {
		tb.Fatal(err)
	}
	s.rearm(tb)
}

// rearm puts the member back as the seeds expect it: its password, valid
// reset and verification codes, subscribed with a known token, and not yet
// agreed to Terms version 2.
func (s *fuzzState) rearm(tb testing.TB) {
	tb.Helper()
	_, err := s.db.Exec(context.Background(), `WITH a AS (
    UPDATE account SET password_hash = $2, username = $5, is_active = true WHERE id = $1 RETURNING id
), m AS (
    UPDATE member SET reset_password_string = 'fuzzresetstring00001', reset_password_string_signed = $3,
        email_verification_string = 'fuzzverifystring0001', email_verification_string_signed = $4, email_verified = false,
        email_unsubscribed = false, email_unsubscribe_string = 'fuzzunsubstring00001', email_unsubscribe_string_signed = $6
    WHERE account_id = $1 RETURNING id
)
DELETE FROM terms_of_use_agreement WHERE terms_of_use_version_id = $7 AND member_id IN (SELECT id FROM m)`,
		s.accountID, s.hash, s.resetCode, s.verifyCode, fuzzUser, s.unsubToken, s.termsV2)
	if err != nil {
		tb.Fatal(err)
	}
}

// validFor is the success-path form of each endpoint, in field order.
func (s *fuzzState) validFor(path string) []string {
	switch path {
	case "/user/login":
		return []string{fuzzUser, fuzzPassword, "true"}
	case "/user/create-account":
		return []string{"New", "Member", "fuzz_new_1", "new@example.com", "Other-Pass-456!", "Other-Pass-456!", "true", "false"}
	case "/user/verify-email-address-response":
		return []string{s.verifyCode}
	case "/user/reset-password":
		return []string{fuzzUser, "FUZZ@example.com"}
	case "/user/set-new-password":
		return []string{fuzzUser, s.resetCode, "Changed-Pass-789!", "Changed-Pass-789!"}
	case "/user/forgot-username":
		return []string{"fuzz@example.com"}
	case "/user/update-my-information":
		return []string{"Fuzzy", "Member", "moved@example.com"}
	case "/user/update-communication-preferences":
		return []string{"false", "true", "true", "false", "false", "false", "Too many"}
	case "/user/change-my-password":
		return []string{fuzzPassword, "Changed-Pass-789!", "Changed-Pass-789!"}
	case "/user/email-unsubscribe-confirm":
		return []string{s.unsubToken, ""}
	case "/user/email-unsubscribe-why":
		return []string{s.unsubToken, "true", "false", "false", "true", "other reason"}
	case "/user/terms-of-use-agree":
		return []string{"2"}
	case "/user/put-chat-message":
		return []string{"Quentin", "chat@example.com", "Hello there"}
	case "/user/pythonabot-notify-me":
		return []string{"bot@example.com", "4"}
	}
	panic("no valid form for " + path)
}

// counts are row counts of the tables the accounts app writes.
type counts map[string]int

const countsQuery = `SELECT
 (SELECT count(*) FROM account), (SELECT count(*) FROM member), (SELECT count(*) FROM prospect),
 (SELECT count(*) FROM chat_message), (SELECT count(*) FROM email_unsubscribe_reason),
 (SELECT count(*) FROM terms_of_use_agreement), (SELECT count(*) FROM cart),
 (SELECT count(*) FROM email_outbox WHERE kind = 'welcome'), (SELECT count(*) FROM email_outbox WHERE kind = 'email_verification'),
 (SELECT count(*) FROM email_outbox WHERE kind = 'password_reset'), (SELECT count(*) FROM email_outbox WHERE kind = 'password_changed'),
 (SELECT count(*) FROM email_outbox WHERE kind = 'forgot_username'), (SELECT count(*) FROM email_outbox WHERE kind = 'email_changed'),
 (SELECT count(*) FROM email_outbox WHERE kind = 'password_updated'), (SELECT count(*) FROM email_outbox WHERE kind = 'chat_message'),
 (SELECT count(*) FROM email_outbox)`

var countNames = []string{"account", "member", "prospect", "chat_message", "unsubscribe_reason", "terms_agreement", "cart",
	"mail_welcome", "mail_verification", "mail_reset", "mail_password_changed", "mail_forgot_username", "mail_email_changed",
	"mail_password_updated", "mail_chat", "mail_all"}

func snapshot(tb testing.TB, db *pgxpool.Pool) counts {
	tb.Helper()
	v := make([]int, len(countNames))
	dst := make([]any, len(v))
	for i := range v {
		dst[i] = &v[i]
	}
	if err := db.QueryRow(context.Background(), countsQuery).Scan(dst...); err != nil {
		tb.Fatal(err)
	}
	c := counts{}
	for i, n := range countNames {
		c[n] = v[i]
	}
	return c
}

func (c counts) minus(o counts) counts {
	d := counts{}
	for k, v := range c {
		if v != o[k] {
			d[k] = v - o[k]
		}
	}
	return d
}

func (c counts) zero() bool {
	for _, v := range c {
		if v != 0 {
			return false
		}
	}
	return true
}

// only says the delta holds exactly these changes.
func (c counts) only(want counts) error {
	for k, v := range c {
		if want[k] != v {
			return fmt.Errorf("wrote %v, want %v", c, want)
		}
	}
	for k, v := range want {
		if c[k] != v {
			return fmt.Errorf("wrote %v, want %v", c, want)
		}
	}
	return nil
}

// partialRowsQuery counts rows that only a half-done write leaves.
const partialRowsQuery = `SELECT
 (SELECT count(*) FROM account a WHERE NOT EXISTS (SELECT 1 FROM member m WHERE m.account_id = a.id)),
 (SELECT count(*) FROM member m WHERE NOT EXISTS (SELECT 1 FROM terms_of_use_agreement t WHERE t.member_id = m.id)),
 (SELECT count(*) FROM member WHERE email_unsubscribe_string IS NULL OR email_unsubscribe_string_signed IS NULL OR mb_cd IS NULL),
 (SELECT count(*) FROM member WHERE (email_verification_string IS NULL) <> (email_verification_string_signed IS NULL)
    OR (reset_password_string IS NULL) <> (reset_password_string_signed IS NULL)),
 (SELECT count(*) FROM prospect WHERE pr_cd IS NULL OR email_unsubscribe_string IS NULL OR email_unsubscribe_string_signed IS NULL
    OR swa_comment IS NULL OR NOT email_unsubscribed),
 (SELECT count(*) FROM chat_message WHERE member_id IS NULL AND prospect_id IS NULL),
 (SELECT count(*) FROM email_unsubscribe_reason WHERE member_id IS NULL AND prospect_id IS NULL),
 (SELECT count(*) FROM member) - (SELECT count(*) FROM email_outbox WHERE kind = 'welcome'),
 (SELECT count(*) FROM chat_message) - (SELECT count(*) FROM email_outbox WHERE kind = 'chat_message')`

var partialNames = []string{"accounts without a member row", "members without a terms agreement",
	"members without an unsubscribe token or mb_cd", "members with half a code", "prospects without pr_cd, token or comment",
	"chat messages linked to nobody", "unsubscribe reasons of nobody", "members minus welcome mails", "chat messages minus owner notices"}

func partialRows(tb testing.TB, db *pgxpool.Pool) error {
	tb.Helper()
	v := make([]int, len(partialNames))
	dst := make([]any, len(v))
	for i := range v {
		dst[i] = &v[i]
	}
	if err := db.QueryRow(context.Background(), partialRowsQuery).Scan(dst...); err != nil {
		tb.Fatal(err)
	}
	var bad []string
	for i, n := range v {
		if n != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d", partialNames[i], n))
		}
	}
	if bad != nil {
		return fmt.Errorf("partial rows: %s", strings.Join(bad, "; "))
	}
	return nil
}

// outcome is the status string of an answer.
func outcome(out map[string]any, key string) string {
	s, _ := out[key].(string)
	return s
}

func FuzzLogin(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/login", fields: []string{"username", "password", "remember_me"},
		extra: [][]string{{"FUZZ_MEMBER", fuzzPassword, "true"}, {fuzzUser, fuzzPassword + "\x00", "false"}},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			if o := outcome(out, "login"); o != "true" && o != "false" {
				return fmt.Errorf("login = %q", o)
			}
			return d.only(counts{})
		}})
}

func FuzzCreateAccount(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/create-account",
		fields: []string{"firstname", "lastname", "username", "email_address", "password", "confirm_password", "newsletter", "remember_me"},
		extra: [][]string{
			{"A", "B", fuzzUser, "x@example.com", "Other-Pass-456!", "Other-Pass-456!", "true", "true"},
			{"A", "B", "fuzz_new_2", "x@example.com", "password", "password", "maybe", "1"},
			{"A", "B", "fuzz_new_3", "bot@example.com", "Other-Pass-456!", "Other-Pass-456!", "false", "false"},
			{strings.Repeat("A", 31), strings.Repeat("B", 151), strings.Repeat("u", 151), strings.Repeat("e", 250) + "@x.io",
				strings.Repeat("P!", 76), strings.Repeat("P!", 76), "true", "true"},
		},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "create_account") {
			case "true":
				// A prospect with the address is converted, not created.
				return d.only(counts{"account": 1, "member": 1, "terms_agreement": 1, "mail_welcome": 1, "mail_all": 1})
			case "false":
				if _, ok := out["errors"].(map[string]any); !ok {
					return fmt.Errorf("no errors object")
				}
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzVerifyEmailAddressResponse(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/verify-email-address-response", fields: []string{"email_verification_code"}, signedIn: true,
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "verify_email_address_response") {
			case "success", "signature-invalid", "code-doesnt-match":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzResetPassword(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/reset-password", fields: []string{"username", "email_address"},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			if outcome(out, "reset_password") != "success" {
				return fmt.Errorf("unknown outcome")
			}
			if d.only(counts{}) == nil {
				return nil
			}
			return d.only(counts{"mail_reset": 1, "mail_all": 1})
		}})
}

func FuzzSetNewPassword(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/set-new-password", fields: []string{"username", "password_reset_code", "new_password", "confirm_new_password"},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "set_new_password") {
			case "success":
				return d.only(counts{"mail_password_changed": 1, "mail_all": 1})
			case "username-not-found", "signature-invalid", "code-doesnt-match", "password-error":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzForgotUsername(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/forgot-username", fields: []string{"email_address"},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			if outcome(out, "forgot_username") != "success" {
				return fmt.Errorf("unknown outcome")
			}
			if d.only(counts{}) == nil {
				return nil
			}
			return d.only(counts{"mail_forgot_username": 1, "mail_all": 1})
		}})
}

func FuzzUpdateMyInformation(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/update-my-information", fields: []string{"firstname", "lastname", "email_address"}, signedIn: true,
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "update_my_information") {
			case "success":
				if d.only(counts{}) == nil {
					return nil
				}
				return d.only(counts{"mail_email_changed": 1, "mail_all": 1})
			case "errors":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzUpdateCommunicationPreferences(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/update-communication-preferences",
		fields: []string{"newsletter", "email_unsubscribe", "no_longer_want_to_receive", "never_signed_up", "inappropriate", "spam", "other"}, signedIn: true,
		extra: [][]string{{"true", "true", "", "", "", "", ""}, {"true", "false", "false", "false", "false", "false", ""}},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "update_communication_preferences") {
			case "success":
				if d.only(counts{}) == nil {
					return nil
				}
				return d.only(counts{"unsubscribe_reason": 1})
			case "errors":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzChangeMyPassword(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/change-my-password", fields: []string{"current_password", "new_password", "confirm_new_password"}, signedIn: true,
		extra: [][]string{{fuzzPassword, fuzzPassword, fuzzPassword}, {fuzzPassword, "Fuzz_Member!1", "Fuzz_Member!1"}},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "change_my_password") {
			case "success":
				return d.only(counts{"mail_password_updated": 1, "mail_all": 1})
			case "errors":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzEmailUnsubscribeConfirm(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/email-unsubscribe-confirm", fields: []string{"token", "pr_token"},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "email_unsubscribe_confirm") {
			case "success", "error":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzEmailUnsubscribeWhy(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/email-unsubscribe-why",
		fields: []string{"token", "no_longer_want_to_receive", "never_signed_up", "inappropriate", "spam", "other"},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "email_unsubscribe_why") {
			case "success":
				return d.only(counts{"unsubscribe_reason": 1})
			case "error":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzTermsOfUseAgree(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/terms-of-use-agree", fields: []string{"version"}, signedIn: true,
		extra: [][]string{{"1"}, {"2147483648"}, {"+2"}, {"0x2"}},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "terms_of_use_agree") {
			case "success":
				return d.only(counts{"terms_agreement": 1})
			case "error":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzPutChatMessage(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/put-chat-message", fields: []string{"name", "email_address", "message"}, dual: true,
		extra: [][]string{{"Fuzz", "fuzz@example.com", "from a member's address"}, {"X", "x@example.com", strings.Repeat("m", 5001)},
			{"X", "x@example.com", strings.Repeat("é", 5000)}},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "put_chat_message") {
			case "true":
				if d.only(counts{"chat_message": 1, "mail_chat": 1, "mail_all": 1}) == nil {
					return nil
				}
				return d.only(counts{"chat_message": 1, "prospect": 1, "mail_chat": 1, "mail_all": 1})
			case "validation_error":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

func FuzzPythonabotNotifyMe(f *testing.F) {
	fuzzForm(f, formTarget{path: "/user/pythonabot-notify-me", fields: []string{"email_address", "how_excited"},
		extra: [][]string{{"bot2@example.com", "٣"}, {"bot3@example.com", "+5"}, {"bot4@example.com", "5\n"}},
		check: func(_ *fuzzState, out map[string]any, d counts) error {
			switch outcome(out, "pythonabot_notify_me") {
			case "success":
				return d.only(counts{"prospect": 1})
			case "validation_error", "duplicate_prospect":
				return d.only(counts{})
			}
			return fmt.Errorf("unknown outcome")
		}})
}

// TestFuzzChecksSeePartialRows makes sure the fuzz targets' database checks
// can fail: each half-written row is caught.
func TestFuzzChecksSeePartialRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]ratelimit.Rate{})
	s := newFuzzState()
	s.setup(t, f)
	if err := partialRows(t, s.db); err != nil {
		t.Fatalf("a clean database: %v", err)
	}
	for _, tc := range []struct{ name, insert, undo string }{
		{"account without member", `INSERT INTO account (username, password_hash) VALUES ('half', 'x')`, `DELETE FROM account WHERE username = 'half'`},
		{"prospect without pr_cd", `INSERT INTO prospect (email, email_unsubscribed, email_unsubscribe_string, email_unsubscribe_string_signed, swa_comment)
VALUES ('p@example.com', true, 's', 't', 'c')`, `DELETE FROM prospect`},
		{"chat message without notice", `INSERT INTO chat_message (member_id, message) SELECT id, 'm' FROM member`, `DELETE FROM chat_message`},
		{"half a reset code", `UPDATE member SET reset_password_string_signed = NULL`, `UPDATE member SET reset_password_string = NULL`},
		{"member without welcome mail", `DELETE FROM email_outbox WHERE kind = 'welcome'`, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.db.Exec(context.Background(), tc.insert); err != nil {
				t.Fatal(err)
			}
			if err := partialRows(t, s.db); err == nil {
				t.Fatal("not caught")
			}
			if tc.undo == "" {
				return // the last case leaves the database dirty
			}
			if _, err := s.db.Exec(context.Background(), tc.undo); err != nil {
				t.Fatal(err)
			}
			if err := partialRows(t, s.db); err != nil {
				t.Fatalf("after undoing: %v", err)
			}
		})
	}
	d := counts{"account": 1}
	if d.only(counts{}) == nil || d.only(counts{"account": 1}) != nil {
		t.Fatal("counts.only")
	}
}
