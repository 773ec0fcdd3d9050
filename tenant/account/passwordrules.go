package account

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// commonPasswordsGz is Django's bundled list of common passwords
// (django/contrib/auth/common-passwords.txt.gz, as shipped with Django 3.2.25
// in Debian's python3-django package; BSD licence, like Django): 19,727
// lowercased, de-duplicated passwords compiled by Royce Williams from public
// breach corpora, 81,330 bytes gzipped. It is the list upstream validated
// against, so a password refused there is refused here.
//
//go:embed common-passwords.txt.gz
var commonPasswordsGz []byte

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	zr, err := gzip.NewReader(bytes.NewReader(commonPasswordsGz))
	if err != nil {
		panic("account: embedded common-password list: " + err.Error())
	}
	set := make(map[string]struct{}, 20000)
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		set[strings.TrimSpace(sc.Text())] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		panic("account: embedded common-password list: " + err.Error())
	}
	return set
})

// CommonPasswordCount is the size of the embedded list (for tests and docs).
func CommonPasswordCount() int { return len(commonPasswords()) }

// PasswordUser is what the similarity rule compares a password with.
type PasswordUser struct {
	Username, FirstName, LastName, Email string
}

// The Django validator messages of §2.3.
const (
	msgTooCommon = "This password is too common."
	msgTooShort  = "This password is too short. It must contain at least 8 characters."
	msgNumeric   = "This password is entirely numeric."
)

// PasswordRules runs Django's four password validators in upstream's order
// (similarity, minimum length 8, common password, numeric) and returns
// every failure as a django_validation error; nil when the password passes.
func PasswordRules(pw string, u PasswordUser) FieldResult {
	var r FieldResult
	add := func(msg string) { r = append(r, FieldError{Type: "django_validation", Description: msg}) }
	if msg := similarity(pw, u); msg != "" {
		add(msg)
	}
	if utf8.RuneCountInString(pw) < 8 {
		add(msgTooShort)
	}
	if _, ok := commonPasswords()[strings.TrimSpace(strings.ToLower(pw))]; ok {
		add(msgTooCommon)
	}
	if pw != "" && !strings.ContainsFunc(pw, func(c rune) bool { return !unicode.IsDigit(c) }) {
		add(msgNumeric)
	}
	return r
}

// maxSimilarity is Django's default threshold.
const maxSimilarity = 0.7

// similarity is Django's UserAttributeSimilarityValidator: the message for
// the first attribute (username, first name, last name, email) that the
// password resembles, or "".
func similarity(pw string, u PasswordUser) string {
	pw = strings.ToLower(pw)
	attrs := []struct{ value, name string }{
		{u.Username, "username"}, {u.FirstName, "first name"}, {u.LastName, "last name"}, {u.Email, "email address"},
	}
	for _, a := range attrs {
		if a.value == "" {
			continue
		}
		v := strings.ToLower(a.value)
		parts := append(splitNonWord(v), v)
		for _, p := range parts {
			if exceedsLengthRatio(pw, p) {
				continue
			}
			if quickRatio(pw, p) >= maxSimilarity {
				return "The password is too similar to the " + a.name + "."
			}
		}
	}
	return ""
}

// splitNonWord is Python's re.split(r'\W+', s): the pieces between runs of
// non-word characters, empty pieces included.
func splitNonWord(s string) []string {
	var out []string
	start, inSep := 0, false
	for i, c := range s {
		word := c == '_' || unicode.IsLetter(c) || unicode.IsNumber(c)
		switch {
		case !word && !inSep:
			out = append(out, s[start:i])
			inSep = true
		case word && inSep:
			start = i
			inSep = false
		}
	}
	if inSep {
		out = append(out, "")
	} else {
		out = append(out, s[start:])
	}
	return out
}

// exceedsLengthRatio skips a piece too short, relative to the password, to
// ever reach the threshold.
func exceedsLengthRatio(pw, piece string) bool {
	pl, vl := float64(utf8.RuneCountInString(pw)), float64(utf8.RuneCountInString(piece))
	return pl >= 10*vl && vl < maxSimilarity/2*pl
}

// quickRatio is difflib.SequenceMatcher.quick_ratio: twice the size of the
// two strings' character-multiset intersection over their total length.
func quickRatio(a, b string) float64 {
	la, lb := utf8.RuneCountInString(a), utf8.RuneCountInString(b)
	if la+lb == 0 {
		return 1
	}
	avail := make(map[rune]int, lb)
	for _, c := range b {
		avail[c]++
	}
	matches := 0
	for _, c := range a {
		if avail[c] > 0 {
			avail[c]--
			matches++
		}
	}
	return 2 * float64(matches) / float64(la+lb)
}
