package account

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// types lists the error types of a result, in order.
func types(r FieldResult) string {
	var t []string
	for _, e := range r {
		t = append(t, e.Type)
	}
	return strings.Join(t, ",")
}

func TestFieldResultJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   FieldResult
		want string
	}{
		{"pass", nil, `true`},
		{"empty", FieldResult{}, `true`},
		{"one error", FieldResult{errRequired}, `[{"type":"required","description":"This is a required field."}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(map[string]FieldResult{"f": tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != `{"f":`+tt.want+`}` {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestMessages pins every text of §2.1 verbatim.
func TestMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e                FieldError
		typ, description string
	}{
		{errRequired, "required", "This is a required field."},
		{errInvalidEmail, "not_valid", "Please enter a valid email address. For example johndoe@domain.com."},
		{errInvalidName, "not_valid", "Please enter a valid name. Characters, numbers, and spaces are allowed."},
		{errTooLong, "too_many_chars", "The value you entered is too long for this field."},
		{errInvalidUsername, "not_valid", "Please enter a valid username. Characters, numbers, underscore (\"_\"), and hyphens (\"-\") are allowed."},
		{errUsernameTooShort, "too_short", "The username you entered is too short. Usernames must be between 6 and 150 characters in length."},
		{errUsernameTaken, "unavailable", "The username you entered is unavailable. Please enter a different username and try again."},
		{errPasswordTooShort, "too_short", "The password you entered is too short. Passwords must be between 8 and 150 characters in length."},
		{errNoCapital, "no_capital_letter", "Passwords must contain at least one capital letter."},
		{errNoSpecial, "no_special_character", "Passwords must contain at least one special character."},
		{errConfirmMismatch, "confirm_password_doesnt_match", "Please make sure your passwords match."},
		{errOutOfRange, "out_of_range", "The value provided is out of range."},
		{errNotAnInt, "not_an_int", "The value provided is not an integer."},
		{errCurrentPassword, "current_password_invalid", "The current password you provided is incorrect."},
		{errSameAsCurrent, "new_password_same_as_current_password", "The new password cannot be the same as the old password."},
		{errDuplicateProspect, "duplicate", "I already know about this email address. Please enter a different email address."},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			if tt.e.Type != tt.typ || tt.e.Description != tt.description {
				t.Fatalf("got %+v, want %q %q", tt.e, tt.typ, tt.description)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, v string
		max     int
		want    string
	}{
		{"empty", "", 30, "required"},
		{"letters digits spaces", "Mary Ann 2", 30, ""},
		{"spaces only", "   ", 30, ""},
		{"hyphen", "Mary-Ann", 30, "not_valid"},
		{"apostrophe", "O'Brien", 150, "not_valid"},
		{"non-ascii letter", "José", 30, "not_valid"},
		{"exactly max", strings.Repeat("a", 30), 30, ""},
		{"over max", strings.Repeat("a", 31), 30, "too_many_chars"},
		{"invalid and too long", strings.Repeat("é", 31), 30, "not_valid,too_many_chars"},
		{"last name max 150", strings.Repeat("b", 150), 150, ""},
		{"last name over 150", strings.Repeat("b", 151), 150, "too_many_chars"},
		{"trailing newline", "Mary\n", 30, "not_valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := types(ValidateName(tt.v, tt.max)); got != tt.want {
				t.Fatalf("ValidateName(%q, %d) = %s, want %s", tt.v, tt.max, got, tt.want)
			}
		})
	}
}

func TestValidateUsername(t *testing.T) {
	t.Parallel()
	taken := func(u string) bool { return u == "member01" }
	tests := []struct {
		name, v, want string
	}{
		{"empty stops", "", "required"},
		{"valid", "jdoe_12-x", ""},
		{"taken exact case", "member01", "unavailable"},
		{"other case is free", "Member01", ""},
		{"one char", "a", "too_short"},
		{"five chars", "abcde", "too_short"},
		{"six chars", "abcdef", ""},
		{"space", "john doe", "not_valid"},
		{"dot short", "a.b", "not_valid,too_short"},
		{"150", strings.Repeat("u", 150), ""},
		{"151", strings.Repeat("u", 151), "too_many_chars"},
		{"151 invalid", strings.Repeat("ü", 151), "not_valid,too_many_chars"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := types(ValidateUsername(tt.v, taken)); got != tt.want {
				t.Fatalf("ValidateUsername(%q) = %s, want %s", tt.v, got, tt.want)
			}
		})
	}
}

func TestValidateEmail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 250) + "@b.cc" // 255
	tests := []struct {
		name, v, want string
	}{
		{"empty", "", "required"},
		{"simple", "john@example.com", ""},
		{"plus dot underscore inside", "j.o_h+n-x@mail.example.co", ""},
		{"single char local", "j@example.com", ""},
		{"subdomains and hyphen", "a@my-host.sub.example.museum", ""},
		{"leading dot", ".john@example.com", "not_valid"},
		{"leading plus", "+john@example.com", "not_valid"},
		{"trailing dot in local", "john.@example.com", "not_valid"},
		{"no at", "john.example.com", "not_valid"},
		{"no tld", "john@example", "not_valid"},
		{"one letter tld", "john@example.c", "not_valid"},
		{"space", "jo hn@example.com", "not_valid"},
		{"trailing newline refused", "john@example.com\n", "not_valid"},
		{"non-ascii", "jöhn@example.com", "not_valid"},
		{"254 ok", strings.Repeat("a", 249) + "@b.cc", ""},
		{"255 too long", long, "too_many_chars"},
		{"too long and invalid", "." + long, "not_valid,too_many_chars"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := types(ValidateEmail(tt.v)); got != tt.want {
				t.Fatalf("ValidateEmail(%q) = %s, want %s", tt.v, got, tt.want)
			}
		})
	}
}

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pw, confirm, want string
	}{
		{"empty stops", "", "x", "required"},
		{"valid", "Abcdefg!", "Abcdefg!", ""},
		{"short", "Abc!", "Abc!", "too_short"},
		{"seven", "Abcdef!", "Abcdef!", "too_short"},
		{"no capital", "abcdefg!", "abcdefg!", "no_capital_letter"},
		{"non-ascii capital is not one", "Ébcdefg!", "Ébcdefg!", "no_capital_letter"},
		{"no special", "Abcdefgh", "Abcdefgh", "no_special_character"},
		{"hyphen is not special", "Abcdefg-", "Abcdefg-", "no_special_character"},
		{"each special", "Abcdefg~", "Abcdefg~", ""},
		{"brackets", "Abcdefg]", "Abcdefg]", ""},
		{"special after newline not seen", "Abcdefgh\n!", "Abcdefgh\n!", "no_special_character"},
		{"mismatch", "Abcdefg!", "Abcdefg?", "confirm_password_doesnt_match"},
		{"150", "A!" + strings.Repeat("a", 148), "A!" + strings.Repeat("a", 148), ""},
		{"151", "A!" + strings.Repeat("a", 149), "A!" + strings.Repeat("a", 149), "too_many_chars"},
		{"all failures", "abc", "abd", "too_short,no_capital_letter,no_special_character,confirm_password_doesnt_match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := types(ValidatePassword(tt.pw, tt.confirm)); got != tt.want {
				t.Fatalf("ValidatePassword(%q, %q) = %s, want %s", tt.pw, tt.confirm, got, tt.want)
			}
		})
	}
}

func TestValidateChatMessage(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, v, want string }{
		{"empty", "", "required"},
		{"text", "Hello, <b>there</b>!\nLine two", ""},
		{"5000", strings.Repeat("é", 5000), ""},
		{"5001", strings.Repeat("é", 5001), "too_many_chars"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := types(ValidateChatMessage(tt.v)); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestValidateHowExcited(t *testing.T) {
	t.Parallel()
	tests := []struct{ v, want string }{
		{"", "required"}, {"1", ""}, {"3", ""}, {"5", ""}, {"0", "out_of_range"}, {"6", "out_of_range"},
		{" 3", "out_of_range"}, {"03", "out_of_range"}, {"3.0", "out_of_range"}, {"three", "out_of_range"},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			t.Parallel()
			if got := types(ValidateHowExcited(tt.v)); got != tt.want {
				t.Fatalf("ValidateHowExcited(%q) = %s, want %s", tt.v, got, tt.want)
			}
		})
	}
}

func TestValidateSKUQuantity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    string
		n    int
		want string
	}{
		{"1", 1, ""}, {"0", 0, ""}, {"99", 99, ""}, {" 7\n", 7, ""}, {"+5", 5, ""}, {"-0", 0, ""},
		{"0099", 99, ""}, {"1_0", 10, ""}, {"\u0663", 3, ""}, {"\U0001D7D7", 9, ""}, {"\u00a012\u2003", 12, ""},
		{"\x1c4", 4, ""},
		{"100", 0, "out_of_range"}, {"-1", 0, "out_of_range"}, {"99999999999999999999999", 0, "out_of_range"},
		{"", 0, "not_an_int"}, {" ", 0, "not_an_int"}, {"1.5", 0, "not_an_int"}, {"abc", 0, "not_an_int"},
		{"1__0", 0, "not_an_int"}, {"_1", 0, "not_an_int"}, {"1_", 0, "not_an_int"}, {"+", 0, "not_an_int"},
		{"- 1", 0, "not_an_int"}, {"+_1", 0, "not_an_int"}, {"0x10", 0, "not_an_int"}, {"²", 0, "not_an_int"},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			t.Parallel()
			n, r := ValidateSKUQuantity(tt.v)
			if got := types(r); got != tt.want || n != tt.n {
				t.Fatalf("ValidateSKUQuantity(%q) = %d, %s; want %d, %s", tt.v, n, got, tt.n, tt.want)
			}
		})
	}
}

// known is every error type the validators may produce.
var known = map[string]bool{"required": true, "not_valid": true, "too_many_chars": true, "too_short": true,
	"unavailable": true, "no_capital_letter": true, "no_special_character": true,
	"confirm_password_doesnt_match": true, "out_of_range": true, "not_an_int": true}

func checkResult(t *testing.T, name, v string, r FieldResult) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range r {
		if !known[e.Type] || e.Description == "" {
			t.Fatalf("%s(%q): unexpected error %+v", name, v, e)
		}
		if seen[e.Type+e.Description] {
			t.Fatalf("%s(%q): duplicate error %+v", name, v, e)
		}
		seen[e.Type+e.Description] = true
	}
	if v == "" && types(r) != "required" && name != "quantity" {
		t.Fatalf("%s(\"\") = %s, want exactly required", name, types(r))
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

func FuzzValidators(f *testing.F) {
	for _, s := range []string{"", "a", "John Doe", "john@example.com", "Abcdefg!", "member01", "1_0", "\u0663", "\n", "é@x.yz"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, v, confirm string) {
		checkResult(t, "name", v, ValidateName(v, 30))
		u := ValidateUsername(v, func(string) bool { return false })
		checkResult(t, "username", v, u)
		if u.OK() && (utf8.RuneCountInString(v) < 6 || utf8.RuneCountInString(v) > 150 || strings.ContainsFunc(v, func(c rune) bool {
			return !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
		})) {
			t.Fatalf("username %q accepted", v)
		}
		e := ValidateEmail(v)
		checkResult(t, "email", v, e)
		if e.OK() && (strings.Count(v, "@") != 1 || strings.ContainsAny(v, " \r\n\t") || len(v) > 254) {
			t.Fatalf("email %q accepted", v)
		}
		p := ValidatePassword(v, confirm)
		checkResult(t, "password", v, p)
		if p.OK() && (v != confirm || utf8.RuneCountInString(v) < 8) {
			t.Fatalf("password %q/%q accepted", v, confirm)
		}
		checkResult(t, "chat", v, ValidateChatMessage(v))
		checkResult(t, "how_excited", v, ValidateHowExcited(v))
		n, q := ValidateSKUQuantity(v)
		checkResult(t, "quantity", v, q)
		if q.OK() && (n < 0 || n > 99) {
			t.Fatalf("quantity %q = %d accepted", v, n)
		}
		_ = PasswordRules(v, PasswordUser{Username: confirm, Email: confirm})
	})
}
