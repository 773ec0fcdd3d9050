package account

import (
	"encoding/json"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldError is one entry of a field's error list (contract §2.1).
type FieldError struct {
	Type        string `json:"type"`
	Description string `json:"description"`
}

// FieldResult is a field's validation outcome. It encodes as the JSON
// literal true when the field passed and as the error array otherwise,
// which is how the client tells them apart.
type FieldResult []FieldError

// OK reports whether the field passed.
func (r FieldResult) OK() bool { return len(r) == 0 }

// MarshalJSON writes true for a passing field.
func (r FieldResult) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("true"), nil
	}
	return json.Marshal([]FieldError(r))
}

// The error texts of §2.1, verbatim: the client shows them as they are.
var (
	errRequired           = FieldError{"required", "This is a required field."}
	errInvalidEmail       = FieldError{"not_valid", "Please enter a valid email address. For example johndoe@domain.com."}
	errInvalidName        = FieldError{"not_valid", "Please enter a valid name. Characters, numbers, and spaces are allowed."}
	errTooLong            = FieldError{"too_many_chars", "The value you entered is too long for this field."}
	errInvalidUsername    = FieldError{"not_valid", `Please enter a valid username. Characters, numbers, underscore ("_"), and hyphens ("-") are allowed.`}
	errUsernameTooShort   = FieldError{"too_short", "The username you entered is too short. Usernames must be between 6 and 150 characters in length."}
	errUsernameTaken      = FieldError{"unavailable", "The username you entered is unavailable. Please enter a different username and try again."}
	errPasswordTooShort   = FieldError{"too_short", "The password you entered is too short. Passwords must be between 8 and 150 characters in length."}
	errNoCapital          = FieldError{"no_capital_letter", "Passwords must contain at least one capital letter."}
	errNoSpecial          = FieldError{"no_special_character", "Passwords must contain at least one special character."}
	errConfirmMismatch    = FieldError{"confirm_password_doesnt_match", "Please make sure your passwords match."}
	errOutOfRange         = FieldError{"out_of_range", "The value provided is out of range."}
	errNotAnInt           = FieldError{"not_an_int", "The value provided is not an integer."}
	errCurrentPassword    = FieldError{"current_password_invalid", "The current password you provided is incorrect."}
	errSameAsCurrent      = FieldError{"new_password_same_as_current_password", "The new password cannot be the same as the old password."}
	errDuplicateProspect  = FieldError{"duplicate", "I already know about this email address. Please enter a different email address."}
	maxUsernameLen        = 150
	maxEmailLen           = 254
	maxPasswordLen        = 150
	maxChatMessageLen     = 5000
	minUsernameLen        = 6
	minPasswordLen        = 8
	passwordSpecialChars  = "!@#$%^&*()~{}[]"
	nameMaxFirst          = 30
	nameMaxLast           = 150
	chatNameMax           = 30
	usernameCharsPattern  = regexp.MustCompile(`^[a-zA-Z0-9_-]*$`)
	nameCharsPattern      = regexp.MustCompile(`^[A-Za-z0-9 ]*$`)
	emailPattern          = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.+-]*[a-zA-Z0-9])?@(([a-zA-Z0-9-])+\.)+([a-zA-Z0-9]{2,4})+$`)
	howExcitedValidValues = map[string]bool{"1": true, "2": true, "3": true, "4": true, "5": true}
)

func runes(s string) int { return utf8.RuneCountInString(s) }

// ValidateName checks a first, last or chat name against max code points.
func ValidateName(v string, max int) FieldResult {
	if v == "" {
		return FieldResult{errRequired}
	}
	var r FieldResult
	if !nameCharsPattern.MatchString(v) {
		r = append(r, errInvalidName)
	}
	if runes(v) > max {
		r = append(r, errTooLong)
	}
	return r
}

// ValidateUsername checks a new username; taken reports whether an account
// already has exactly this username (it is asked only for a well-formed one).
func ValidateUsername(v string, taken func(string) bool) FieldResult {
	if v == "" {
		return FieldResult{errRequired}
	}
	var r FieldResult
	if !usernameCharsPattern.MatchString(v) {
		r = append(r, errInvalidUsername)
	}
	n := runes(v)
	if n > maxUsernameLen {
		r = append(r, errTooLong)
	}
	if n < minUsernameLen {
		r = append(r, errUsernameTooShort)
	}
	if taken != nil && taken(v) {
		r = append(r, errUsernameTaken)
	}
	return r
}

// ValidateEmail checks an address with the upstream pattern (stricter than
// the client's). Upstream's Python pattern also let one trailing newline
// through; we refuse it, as the address ends up in mail headers.
func ValidateEmail(v string) FieldResult {
	if v == "" {
		return FieldResult{errRequired}
	}
	var r FieldResult
	if !emailPattern.MatchString(v) {
		r = append(r, errInvalidEmail)
	}
	if runes(v) > maxEmailLen {
		r = append(r, errTooLong)
	}
	return r
}

// ValidatePassword applies the custom password rules of §2.2 to a new
// password and its confirmation. The Django rules (PasswordRules) run only
// when these pass.
func ValidatePassword(pw, confirm string) FieldResult {
	if pw == "" {
		return FieldResult{errRequired}
	}
	var r FieldResult
	n := runes(pw)
	if n > maxPasswordLen {
		r = append(r, errTooLong)
	}
	if n < minPasswordLen {
		r = append(r, errPasswordTooShort)
	}
	if !strings.ContainsFunc(pw, func(c rune) bool { return c >= 'A' && c <= 'Z' }) {
		r = append(r, errNoCapital)
	}
	// Upstream's pattern stops at the first line break.
	firstLine, _, _ := strings.Cut(pw, "\n")
	if !strings.ContainsAny(firstLine, passwordSpecialChars) {
		r = append(r, errNoSpecial)
	}
	if pw != confirm {
		r = append(r, errConfirmMismatch)
	}
	return r
}

// ValidateChatMessage checks a chat message body.
func ValidateChatMessage(v string) FieldResult {
	var r FieldResult
	if v == "" {
		r = append(r, errRequired)
	}
	if runes(v) > maxChatMessageLen {
		r = append(r, errTooLong)
	}
	return r
}

// ValidateHowExcited checks PythonABot's 1-5 rating.
func ValidateHowExcited(v string) FieldResult {
	if v == "" {
		return FieldResult{errRequired}
	}
	if !howExcitedValidValues[v] {
		return FieldResult{errOutOfRange}
	}
	return nil
}

// ValidateSKUQuantity parses an add-to-cart quantity as Python's int()
// does (surrounding whitespace, a sign, "_" between digits, any Unicode
// decimal digits) and requires 0..99. The shop nests the result once more:
// {"quantity": [[{...}]]}.
func ValidateSKUQuantity(v string) (int, FieldResult) {
	n, ok := pythonInt(v)
	switch {
	case !ok:
		return 0, FieldResult{errNotAnInt}
	case n < 0 || n > 99:
		return 0, FieldResult{errOutOfRange}
	}
	return n, nil
}

// pythonInt mirrors int(str) for base 10. Values beyond ±9999 are reported
// as ±10000: the callers only range-check them.
func pythonInt(s string) (int, bool) {
	s = strings.TrimFunc(s, pythonSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, false
	}
	n, digits, prevUnderscore := 0, 0, true // true: no leading "_"
	for _, c := range s {
		if c == '_' {
			if prevUnderscore {
				return 0, false
			}
			prevUnderscore = true
			continue
		}
		d, ok := digitValue(c)
		if !ok {
			return 0, false
		}
		prevUnderscore = false
		digits++
		if n < 10000 {
			n = n*10 + d
		}
	}
	if prevUnderscore || digits == 0 {
		return 0, false
	}
	if n > 10000 {
		n = 10000
	}
	if neg {
		n = -n
	}
	return n, true
}

// pythonSpace is str.isspace, which int() strips: Unicode White_Space plus
// the ASCII information separators.
func pythonSpace(c rune) bool {
	return unicode.IsSpace(c) || (c >= 0x1c && c <= 0x1f)
}

// digitValue returns the value of a Unicode decimal digit (category Nd).
// Every Nd range starts at a zero and runs in blocks of ten.
func digitValue(c rune) (int, bool) {
	if c >= '0' && c <= '9' {
		return int(c - '0'), true
	}
	for _, r := range unicode.Nd.R16 {
		if rune(r.Lo) <= c && c <= rune(r.Hi) {
			return int(c-rune(r.Lo)) % 10, true
		}
	}
	for _, r := range unicode.Nd.R32 {
		if rune(r.Lo) <= c && c <= rune(r.Hi) {
			return int(c-rune(r.Lo)) % 10, true
		}
	}
	return 0, false
}
