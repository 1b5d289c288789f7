package domain

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password policy.
const (
	MinPasswordLength = 10
	MaxPasswordLength = 256
)

// argon2id parameters (RFC 9106 §4's second recommendation is 64 MiB, 3
// passes; OWASP's floor is 19 MiB, 2 passes). 19 MiB and 2 passes keep a
// login near 30 ms on one core while costing an attacker the memory.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

var errBadPasswordHash = errors.New("domain: malformed password hash")

// CheckPasswordPolicy says what is wrong with a new password, "" if nothing.
func CheckPasswordPolicy(pw string) string {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return "must be valid UTF-8"
	case n < MinPasswordLength:
		return fmt.Sprintf("must be at least %d characters", MinPasswordLength)
	case len(pw) > MaxPasswordLength:
		return fmt.Sprintf("must be at most %d bytes", MaxPasswordLength)
	}
	return ""
}

// HashPassword returns the argon2id hash of pw in the PHC string format:
// $argon2id$v=19$m=…,t=…,p=…$salt$hash (unpadded base64).
func HashPassword(rand io.Reader, pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches hash, comparing in constant
// time. The parameters come from the hash, so hashes made with other
// parameters keep working.
func CheckPassword(hash, pw string) bool {
	p, salt, key, err := parsePasswordHash(hash)
	if err != nil || len(pw) > MaxPasswordLength {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// dummyPasswordHash is checked against when a username is unknown, so an
// unknown user takes as long as a wrong password.
var dummyPasswordHash = func() string {
	h, _ := HashPassword(strings.NewReader(strings.Repeat("tollgate-dummy-salt", 2)), "not a password of anyone")
	return h
}()

// CheckNoPassword spends the time of a password check and returns false.
func CheckNoPassword(pw string) bool {
	CheckPassword(dummyPasswordHash, pw)
	return false
}

type argonParams struct {
	memory, time uint32
	threads      uint8
}

func parsePasswordHash(hash string) (argonParams, []byte, []byte, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return argonParams{}, nil, nil, errBadPasswordHash
	}
	var p argonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.memory == 0 || p.memory > 1<<21 || p.time == 0 || p.time > 10 || p.threads == 0 {
		return argonParams{}, nil, nil, errBadPasswordHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 {
		return argonParams{}, nil, nil, errBadPasswordHash
	}
	return p, salt, key, nil
}
