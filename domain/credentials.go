// Package domain holds Tollgate's aggregates and their rules. It is pure Go:
// commands come in, events (from package events) go out, invariants hold.
// Randomness is passed in as an io.Reader so that callers decide where it
// comes from (crypto/rand, or a seeded stream for idempotent retries).
package domain

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"unsafe"
)

// Credential prefixes. A token string is
//
//	prefix + selector (16 base62) + secret (32 base62) + checksum (6 base62)
//
// The selector names the credential (token id "tok_"+selector) so any node
// can find its record without a hash index; the secret makes it unguessable;
// the CRC-32 checksum rejects typos without a lookup and lets secret
// scanners recognise leaked tokens.
const (
	PrefixLive         = "tg_live_"
	PrefixTest         = "tg_test_"
	PrefixAccessToken  = "tg_at_"
	PrefixRefreshToken = "tg_rt_"
	PrefixClientSecret = "tg_cs_"

	selectorLen = 16
	secretLen   = 32
	checksumLen = 6
	bodyLen     = selectorLen + secretLen + checksumLen
)

// Environments.
const (
	EnvLive = "live"
	EnvTest = "test"
)

// ErrMalformedCredential is returned for strings that are not a well-formed
// Tollgate credential (wrong prefix, length, alphabet or checksum).
var ErrMalformedCredential = errors.New("malformed credential")

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Credential is a parsed credential string.
type Credential struct {
	Prefix   string
	Selector string
}

// Environment is live or test for API tokens, empty for other kinds.
func (c Credential) Environment() string {
	switch c.Prefix {
	case PrefixLive:
		return EnvLive
	case PrefixTest:
		return EnvTest
	}
	return ""
}

// TokenID is the public id of the credential's record.
func (c Credential) TokenID() string { return "tok_" + c.Selector }

// ParseCredential checks a credential string's form and checksum.
func ParseCredential(s string) (Credential, error) {
	var prefix string
	for _, p := range []string{PrefixLive, PrefixTest, PrefixAccessToken, PrefixRefreshToken, PrefixClientSecret} {
		if strings.HasPrefix(s, p) {
			prefix = p
			break
		}
	}
	body := s[len(prefix):]
	if prefix == "" || len(body) != bodyLen {
		return Credential{}, ErrMalformedCredential
	}
	for i := 0; i < len(body); i++ {
		if !isBase62[body[i]] {
			return Credential{}, ErrMalformedCredential
		}
	}
	if sum := checksumOf(s[:len(s)-checksumLen]); string(sum[:]) != body[selectorLen+secretLen:] {
		return Credential{}, ErrMalformedCredential
	}
	return Credential{Prefix: prefix, Selector: body[:selectorLen]}, nil
}

// NewCredential generates a credential string with the given prefix.
func NewCredential(rand io.Reader, prefix string) (string, Credential, error) {
	random, err := randomBase62(rand, selectorLen+secretLen)
	if err != nil {
		return "", Credential{}, err
	}
	s := prefix + random
	s += checksum(s)
	return s, Credential{Prefix: prefix, Selector: random[:selectorLen]}, nil
}

// HashSecret is the stored form of a generated high-entropy secret: its
// SHA-256, hex encoded.
func HashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// MatchesHash reports, in constant time, whether secret's HashSecret is
// hash. It allocates nothing, so it can run on every request.
func MatchesHash(secret, hash string) bool {
	if len(hash) != 2*sha256.Size {
		return false
	}
	sum := sha256.Sum256(readOnly(secret))
	var hexed [2 * sha256.Size]byte
	hex.Encode(hexed[:], sum[:])
	return subtle.ConstantTimeCompare(hexed[:], readOnly(hash)) == 1
}

// NewID returns prefix + n random base62 characters.
func NewID(rand io.Reader, prefix string, n int) (string, error) {
	s, err := randomBase62(rand, n)
	return prefix + s, err
}

// randomBase62 draws n unbiased base62 characters (rejection sampling).
func randomBase62(rand io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b < 248 && len(out) < n { // 248 = 4*62: keeps the draw uniform
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out), nil
}

func checksum(s string) string {
	sum := checksumOf(s)
	return string(sum[:])
}

// checksumOf is checksum without an allocation, for the parse path.
func checksumOf(s string) [checksumLen]byte {
	v := crc32.Update(0, crc32.IEEETable, readOnly(s))
	var out [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = base62[v%62]
		v /= 62
	}
	return out
}

// Digest128Size is the size of the truncated digests that in-memory views
// of credentials keep.
const Digest128Size = 16

// MatchesDigest128 reports, in constant time, whether the first 128 bits of
// secret's SHA-256 are digest. Generated secrets carry about 190 bits of
// entropy, and finding another string with the same 128 bits is a second
// preimage of SHA-256 truncated to 128 bits: 2^128 work. It allocates
// nothing.
func MatchesDigest128(secret string, digest *[Digest128Size]byte) bool {
	sum := sha256.Sum256(readOnly(secret))
	return subtle.ConstantTimeCompare(sum[:Digest128Size], digest[:]) == 1
}

// readOnly views s as bytes without copying, for functions that only read
// their argument (hashes, comparisons). Never write through it.
func readOnly(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// isBase62 marks the bytes of the base62 alphabet.
var isBase62 = func() (t [256]bool) {
	for i := 0; i < len(base62); i++ {
		t[base62[i]] = true
	}
	return t
}()

// CredentialEnvironment is the environment a token string's prefix names:
// live for tg_live_, test for tg_test_, "" otherwise.
func CredentialEnvironment(s string) string {
	switch {
	case strings.HasPrefix(s, PrefixLive):
		return EnvLive
	case strings.HasPrefix(s, PrefixTest):
		return EnvTest
	}
	return ""
}

// NewCredentialFor generates a credential with prefix that names an
// existing selector: a token's refresh token, or its rotated value.
func NewCredentialFor(rand io.Reader, prefix, selector string) (string, error) {
	if len(selector) != selectorLen {
		return "", ErrMalformedCredential
	}
	secret, err := randomBase62(rand, secretLen)
	if err != nil {
		return "", err
	}
	s := prefix + selector + secret
	return s + checksum(s), nil
}
