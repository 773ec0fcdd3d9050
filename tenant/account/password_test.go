package account

import (
	"errors"
	"strings"
	"testing"
)

// cheap keeps unit tests fast; the algorithm is the same.
var cheap = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordRulesMatchDjango(t *testing.T) {
	t.Parallel()
	// Expected outcomes computed with Django 3.2's validate_password and
	// its four default validators for this user.
	u := PasswordUser{Username: "jdoe12", FirstName: "John", LastName: "Doe", Email: "john.doe@example.com"}
	const (
		common  = "This password is too common."
		short   = "This password is too short. It must contain at least 8 characters."
		numeric = "This password is entirely numeric."
	)
	tests := []struct {
		pw   string
		want []string
	}{
		{"Password1!", []string{common}},
		{"PASSWORD", []string{common}},
		{"  Password  ", []string{common}},
		{"JohnDoe12!", []string{"The password is too similar to the username."}},
		{"Jdoe12!!", []string{"The password is too similar to the username."}},
		{"john.doe@example.com", []string{"The password is too similar to the email address."}},
		{"Doe!", []string{"The password is too similar to the last name.", short}},
		{"12345678", []string{common, numeric}},
		{"1234567", []string{short, common, numeric}},
		{"Xk9!mQ2#vL", nil},
		{"Tr0ub4dor&3", nil},
		{"Qwertyuiop!1", nil},
		{"ÉCOLE!école1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.pw, func(t *testing.T) {
			t.Parallel()
			r := PasswordRules(tt.pw, u)
			var got []string
			for _, e := range r {
				if e.Type != "django_validation" {
					t.Fatalf("type %q", e.Type)
				}
				got = append(got, e.Description)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("PasswordRules(%q) = %q, want %q", tt.pw, got, tt.want)
			}
		})
	}
}

func TestSimilarityAttributes(t *testing.T) {
	t.Parallel()
	// Computed with Django 3.2's UserAttributeSimilarityValidator.
	alice := PasswordUser{"member01", "Alice", "Anderson", "alice.anderson@example.com"}
	tests := []struct {
		pw   string
		u    PasswordUser
		want string
	}{
		{"Member01!xx", alice, "The password is too similar to the username."},
		{"Alice.Anderson!", PasswordUser{"xq", "Alice", "Anderson", "alice.anderson@example.com"}, ""},
		{"Anderson!A1", PasswordUser{"xq", "Zed", "Anderson", "zz@example.com"}, "The password is too similar to the last name."},
		{"Example.com!Z", PasswordUser{"xq", "", "", "zz@example.com"}, "The password is too similar to the email address."},
		{"Qwertyuiop!1", alice, ""},
		{"Alicexx!", PasswordUser{FirstName: "Alice"}, "The password is too similar to the first name."},
		{"Alicexx!", PasswordUser{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.pw, func(t *testing.T) {
			t.Parallel()
			if got := similarity(tt.pw, tt.u); got != tt.want {
				t.Fatalf("similarity(%q) = %q, want %q", tt.pw, got, tt.want)
			}
		})
	}
}

func TestSplitNonWord(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"alice.anderson@example.com", "alice|anderson|example|com"},
		{".a", "|a"},
		{"a.", "a|"},
		{"a__b", "a__b"},
		{"é-ü", "é|ü"},
	}
	for _, tt := range tests {
		if got := strings.Join(splitNonWord(tt.in), "|"); got != tt.want {
			t.Errorf("splitNonWord(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCommonPasswordList(t *testing.T) {
	t.Parallel()
	if n := CommonPasswordCount(); n != 19727 {
		t.Fatalf("embedded list has %d passwords, want 19727", n)
	}
}

// Hashes and passwords of the upstream fixture database.
var fixtureHashes = []struct{ user, hash, password string }{
	{"member01", "pbkdf2_sha256$1000000$62cAJE8QV1paBOkNkRtAEW$FXUqI0auEqI0vJ4GbY7wEhl7lnFI/vcpOUxBfjDT+ng=", "Fixture-Pass-01!"},
	{"member06", "pbkdf2_sha256$260000$4azUANpC2xNt3WutSfuRN9$RmYxkqtY0riwkx9PEsmj/ce5/yU37m9hkivJCm5rFgE=", "Fixture-Pass-06!"},
}

func TestVerifyDjangoPBKDF2(t *testing.T) {
	t.Parallel()
	h := NewHasher(cheap)
	for _, f := range fixtureHashes {
		t.Run(f.user, func(t *testing.T) {
			t.Parallel()
			ok, err := h.Verify(f.hash, f.password)
			if err != nil || !ok {
				t.Fatalf("Verify(right password) = %v, %v", ok, err)
			}
			ok, err = h.Verify(f.hash, f.password+"x")
			if err != nil || ok {
				t.Fatalf("Verify(wrong password) = %v, %v", ok, err)
			}
			if !h.NeedsRehash(f.hash) {
				t.Fatal("a pbkdf2 hash must be re-hashed")
			}
		})
	}
}

func TestArgon2RoundTrip(t *testing.T) {
	t.Parallel()
	h := NewHasher(cheap)
	enc, err := h.Hash("Fixture-Pass-01!")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("encoding %q", enc)
	}
	enc2, _ := h.Hash("Fixture-Pass-01!")
	if enc == enc2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	for _, tt := range []struct {
		pw   string
		want bool
	}{{"Fixture-Pass-01!", true}, {"fixture-pass-01!", false}, {"", false}} {
		if ok, err := h.Verify(enc, tt.pw); err != nil || ok != tt.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", tt.pw, ok, err, tt.want)
		}
	}
	if h.NeedsRehash(enc) {
		t.Error("a hash with the current costs needs no re-hash")
	}
	if !NewHasher(DefaultArgon2).NeedsRehash(enc) {
		t.Error("a hash with other costs must be re-hashed")
	}
	// A hash made with other costs still verifies.
	if ok, _ := NewHasher(DefaultArgon2).Verify(enc, "Fixture-Pass-01!"); !ok {
		t.Error("verification must read the costs from the hash")
	}
}

func TestMalformedHashes(t *testing.T) {
	t.Parallel()
	h := NewHasher(cheap)
	for _, enc := range []string{
		"", "plain", "md5$abc$def", "pbkdf2_sha256$x$salt$aGFzaA==", "pbkdf2_sha256$0$salt$aGFzaA==",
		"pbkdf2_sha256$99999999999$salt$aGFzaA==", "pbkdf2_sha256$1000$salt$!!!", "pbkdf2_sha256$1000$$aGFzaA==",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ", "$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		ok, err := h.Verify(enc, "x")
		if ok || !errors.Is(err, ErrUnknownHash) {
			t.Errorf("Verify(%q) = %v, %v; want ErrUnknownHash", enc, ok, err)
		}
		if !h.NeedsRehash(enc) {
			t.Errorf("NeedsRehash(%q) = false", enc)
		}
	}
}

// BenchmarkHashPassword measures the production cost (target about 50 ms).
func BenchmarkHashPassword(b *testing.B) {
	h := NewHasher(DefaultArgon2)
	for b.Loop() {
		if _, err := h.Hash("Fixture-Pass-01!"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDummy is the cost of a login for an unknown username.
func BenchmarkVerifyDummy(b *testing.B) {
	h := NewHasher(DefaultArgon2)
	for b.Loop() {
		h.VerifyDummy("Fixture-Pass-01!")
	}
}

// BenchmarkVerifyImported is the cost of verifying an imported upstream hash.
func BenchmarkVerifyImported(b *testing.B) {
	h := NewHasher(DefaultArgon2)
	for b.Loop() {
		_, _ = h.Verify(fixtureHashes[0].hash, fixtureHashes[0].password)
	}
}
