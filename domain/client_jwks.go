package domain

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// JWK Set limits of a client.
const (
	MaxClientKeys = 10
	// MinRSAKeyBits is the smallest RSA modulus a client key may have.
	MinRSAKeyBits = 2048
)

// Signature algorithms a key may name in "alg", by key type.
var (
	rsaAlgorithms     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	p256Algorithms    = []string{"ES256"}
	ed25519Algorithms = []string{"EdDSA", "Ed25519"}
)

// checkJWKS validates a client's JWK Set, {"keys":[…]}: one to ten public
// signing keys, each RSA of at least 2048 bits, EC P-256 or Ed25519, each
// with a kid of its own. It returns the set as go-jose encodes it, so what
// is stored holds nothing but the public keys' parameters.
func checkJWKS(v *validation, raw []byte) json.RawMessage {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil || set.Keys == nil {
		v.add("jwks", `must be a JWK Set: {"keys":[…]}`)
		return nil
	}
	switch {
	case len(set.Keys) == 0:
		v.add("jwks.keys", "at least one key is required")
		return nil
	case len(set.Keys) > MaxClientKeys:
		v.add("jwks.keys", "at most %d keys", MaxClientKeys)
		return nil
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	var kids []string
	before := len(v.problems)
	for i, rawKey := range set.Keys {
		field := "jwks.keys[" + strconv.Itoa(i) + "]"
		key, problem := checkJWK(rawKey)
		if problem != "" {
			v.add(field, "%s", problem)
			continue
		}
		if slices.Contains(kids, key.KeyID) {
			v.add(field+".kid", "%q is used by another key of the set", key.KeyID)
		}
		kids = append(kids, key.KeyID)
		keys = append(keys, key)
	}
	if len(v.problems) > before {
		return nil
	}
	out, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		v.add("jwks", "cannot be encoded: %s", joseMessage(err))
		return nil
	}
	return out
}

// checkJWK parses one key and says what is wrong with it, "" if nothing.
func checkJWK(raw []byte) (jose.JSONWebKey, string) {
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(raw); err != nil {
		if errors.Is(err, jose.ErrUnsupportedKeyType) {
			return key, "must be an RSA, EC P-256 or Ed25519 key"
		}
		return key, "is not a valid JWK: " + joseMessage(err)
	}
	if !key.IsPublic() {
		return key, "must be a public key: private or symmetric key material is not accepted"
	}
	if !key.Valid() {
		return key, "is not a valid public key"
	}
	switch {
	case key.KeyID == "":
		return key, "needs a kid"
	case !ValidClientID(key.KeyID):
		return key, "kid must be 1 to 200 printable characters"
	case key.Use != "" && key.Use != "sig":
		return key, `use must be "sig"`
	}
	var algs []string
	switch k := key.Key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSAKeyBits {
			return key, "RSA keys must have at least " + strconv.Itoa(MinRSAKeyBits) + " bits, this one has " + strconv.Itoa(k.N.BitLen())
		}
		algs = rsaAlgorithms
	case *ecdsa.PublicKey:
		if k.Curve.Params().Name != "P-256" {
			return key, "EC keys must be on P-256, not " + k.Curve.Params().Name
		}
		algs = p256Algorithms
	case ed25519.PublicKey:
		algs = ed25519Algorithms
	default:
		return key, "must be an RSA, EC P-256 or Ed25519 key"
	}
	if key.Algorithm != "" && !slices.Contains(algs, key.Algorithm) {
		return key, "alg must be one of " + strings.Join(algs, ", ") + " for this key"
	}
	return key, ""
}

func joseMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "go-jose/go-jose: ")
}
