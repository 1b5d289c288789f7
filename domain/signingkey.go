package domain

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/events"
)

// Signing keys sign JWT access tokens. Tollgate's own keys are ECDSA P-256
// (ES256); their private halves are stored only sealed with the cluster's
// key-encryption key (KEK), AES-256-GCM with the kid as additional data.
const (
	SigningAlgorithm = "ES256"
	// KEKSize is the length of a key-encryption key in bytes (AES-256).
	KEKSize = 32
	// SigningKeyIDPrefix starts every kid.
	SigningKeyIDPrefix = "sk_"
)

// ErrKEK: the key-encryption key is malformed or cannot open a stored key
// (nodes of one cluster must share one KEK).
var ErrKEK = errors.New("key-encryption key cannot open the signing key")

// SigningKey is a key's state as its events tell it.
type SigningKey struct {
	KID              string
	Algorithm        string
	Public           json.RawMessage
	EncryptedPrivate string
	CreatedAt        time.Time
	// RetiredAt is set once the key stopped signing; its public key is
	// published until PublishUntil.
	RetiredAt    *time.Time
	PublishUntil *time.Time
}

// Active reports whether the key signs new tokens.
func (k SigningKey) Active() bool { return k.RetiredAt == nil }

// Published reports whether the key belongs in the JWKS at now: active, or
// retired with tokens that may still be unexpired.
func (k SigningKey) Published(now time.Time) bool {
	return k.RetiredAt == nil || (k.PublishUntil != nil && now.Before(*k.PublishUntil))
}

// NewSigningKey generates an ES256 key and seals its private half with kek.
func NewSigningKey(rand io.Reader, kek []byte, now time.Time) (events.SigningKeyCreated, error) {
	if len(kek) != KEKSize {
		return events.SigningKeyCreated{}, fmt.Errorf("%w: it must be %d bytes, not %d", ErrKEK, KEKSize, len(kek))
	}
	kid, err := NewID(rand, SigningKeyIDPrefix, 20)
	if err != nil {
		return events.SigningKeyCreated{}, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return events.SigningKeyCreated{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return events.SigningKeyCreated{}, err
	}
	sealed, err := seal(rand, kek, kid, der)
	if err != nil {
		return events.SigningKeyCreated{}, err
	}
	pub, err := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: SigningAlgorithm, Use: "sig"}.MarshalJSON()
	if err != nil {
		return events.SigningKeyCreated{}, err
	}
	return events.SigningKeyCreated{KID: kid, Algorithm: SigningAlgorithm, Public: pub,
		EncryptedPrivate: sealed, CreatedAt: now.UTC()}, nil
}

// Private opens the key's private half with kek.
func (k SigningKey) Private(kek []byte) (crypto.Signer, error) {
	der, err := open(kek, k.KID, k.EncryptedPrivate)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.KID, err)
	}
	signer, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Algorithm != SigningAlgorithm {
		return nil, fmt.Errorf("signing key %s: unsupported key type %T (%s)", k.KID, key, k.Algorithm)
	}
	return signer, nil
}

// RetiredKeyMargin covers nodes that sign with a key for a moment after
// its retirement, until they have applied it.
const RetiredKeyMargin = time.Minute

// Retire stops k from signing at now. Tokens it signed live at most
// [MaxAccessTokenTTL] seconds, so its public key is published that long
// (plus [RetiredKeyMargin]).
func (k SigningKey) Retire(now time.Time) (events.SigningKeyRetired, error) {
	if !k.Active() {
		return events.SigningKeyRetired{}, ErrConflict
	}
	until := now.Add(MaxAccessTokenTTL*time.Second + RetiredKeyMargin).UTC()
	return events.SigningKeyRetired{KID: k.KID, RetiredAt: now.UTC(), PublishUntil: until}, nil
}

func seal(rand io.Reader, kek []byte, kid string, plain []byte) (string, error) {
	aead, err := kekCipher(kek)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(kid))), nil
}

func open(kek []byte, kid, sealed string) ([]byte, error) {
	aead, err := kekCipher(kek)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize() {
		return nil, fmt.Errorf("%w %s: sealed key is malformed", ErrKEK, kid)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("%w %s: nodes of one cluster must share --key-encryption-key", ErrKEK, kid)
	}
	return plain, nil
}

func kekCipher(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("%w: it must be %d bytes, not %d", ErrKEK, KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
