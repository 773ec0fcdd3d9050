package account

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters of new password hashes.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// DefaultArgon2 costs about 50 ms per hash on the 2-vCPU machines we run on
// (BenchmarkHashPassword measures it): 32 MiB, 2 passes, 1 lane. It is above
// OWASP's floor of 19 MiB / 2 passes and keeps a login burst within memory.
var DefaultArgon2 = Argon2Params{Memory: 32 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// maxPBKDF2Iterations bounds the work an imported hash can demand.
const maxPBKDF2Iterations = 10_000_000

// argon2Slots bounds the argon2id computations running at once in the
// process to the CPUs that can run them. Each holds its Memory (32 MiB by
// default) while it runs, so a burst of sign-ins on many tenants held
// gigabytes when every request hashed at once; queued here they finish as
// fast (the work is CPU-bound) within cores x Memory.
var argon2Slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// idKey is argon2.IDKey run in one of argon2Slots.
func idKey(pw, salt []byte, p Argon2Params) []byte {
	argon2Slots <- struct{}{}
	defer func() { <-argon2Slots }()
	return argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// ErrUnknownHash is returned for a stored hash in no format we verify.
var ErrUnknownHash = errors.New("unknown password hash format")

// Hasher hashes new passwords with argon2id and verifies both argon2id and
// Django's pbkdf2_sha256 hashes, so members imported from an upstream
// database keep their passwords (and are re-hashed on their next login).
type Hasher struct {
	p     Argon2Params
	dummy string
}

// NewHasher returns a hasher for new hashes with p.
func NewHasher(p Argon2Params) *Hasher {
	h := &Hasher{p: p}
	buf := make([]byte, 18)
	_, _ = rand.Read(buf)
	h.dummy, _ = h.Hash(base64.RawStdEncoding.EncodeToString(buf))
	return h
}

var b64 = base64.RawStdEncoding

// Hash returns the PHC string $argon2id$v=19$m=..,t=..,p=..$salt$hash.
func (h *Hasher) Hash(pw string) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := idKey([]byte(pw), salt, h.p)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.p.Memory, h.p.Time, h.p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches the stored hash (argon2id or Django
// pbkdf2_sha256), comparing in constant time.
func (h *Hasher) Verify(encoded, pw string) (bool, error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		p, salt, key, err := parseArgon2(encoded)
		if err != nil {
			return false, err
		}
		got := idKey([]byte(pw), salt, p)
		return subtle.ConstantTimeCompare(got, key) == 1, nil
	case strings.HasPrefix(encoded, "pbkdf2_sha256$"):
		return verifyPBKDF2(encoded, pw)
	default:
		return false, ErrUnknownHash
	}
}

// VerifyDummy spends the time of a real verification and returns false, so
// a login for an unknown username takes as long as one with a wrong password.
func (h *Hasher) VerifyDummy(pw string) {
	_, _ = h.Verify(h.dummy, pw)
}

// NeedsRehash reports whether a stored hash should be replaced by a new one
// after a successful login: any pbkdf2 hash, or argon2id with other costs.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := parseArgon2(encoded)
	if err != nil {
		return true
	}
	return p.Memory != h.p.Memory || p.Time != h.p.Time || p.Threads != h.p.Threads || p.KeyLen != h.p.KeyLen
}

func parseArgon2(encoded string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	bad := fmt.Errorf("%w: malformed argon2id hash", ErrUnknownHash)
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, bad
	}
	var threads uint32
	if n, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || n != 3 ||
		threads == 0 || threads > 255 || p.Time == 0 || p.Memory < 8*threads || p.Memory > 1<<22 {
		return p, nil, nil, bad
	}
	p.Threads = uint8(threads)
	salt, err1 := b64.DecodeString(f[4])
	key, err2 := b64.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 {
		return p, nil, nil, bad
	}
	p.SaltLen, p.KeyLen = len(salt), uint32(len(key))
	return p, salt, key, nil
}

// verifyPBKDF2 checks Django's pbkdf2_sha256$<iterations>$<salt>$<base64>,
// taking the iteration count from the hash (imports mix 260,000 and
// 1,000,000).
func verifyPBKDF2(encoded, pw string) (bool, error) {
	bad := fmt.Errorf("%w: malformed pbkdf2_sha256 hash", ErrUnknownHash)
	f := strings.Split(encoded, "$")
	if len(f) != 4 {
		return false, bad
	}
	iter, err := strconv.Atoi(f[1])
	if err != nil || iter < 1 || iter > maxPBKDF2Iterations || f[2] == "" {
		return false, bad
	}
	want, err := base64.StdEncoding.DecodeString(f[3])
	if err != nil || len(want) == 0 {
		return false, bad
	}
	got, err := pbkdf2.Key(sha256.New, pw, []byte(f[2]), iter, len(want))
	if err != nil {
		return false, bad
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
