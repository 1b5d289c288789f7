package domain

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tollgate/tollgate/events"
)

// WebhookSecretPrefix starts every webhook signing secret (Standard Webhooks).
const WebhookSecretPrefix = "whsec_"

// webhookSecretBytes is the secret's length: the Standard Webhooks
// specification asks for 24 to 64 bytes.
const webhookSecretBytes = 32

// Errors of sealed secrets.
var (
	// ErrWrongKEK: the secret was sealed under another key-encryption key.
	ErrWrongKEK = errors.New("secret sealed under another key-encryption key")
	// ErrBadSecret: a secret or a sealed secret is malformed or was altered.
	ErrBadSecret = errors.New("malformed or altered secret")
)

// NewWebhookSecret draws a signing secret: whsec_ and the base64 of 32
// random bytes.
func NewWebhookSecret(rand io.Reader) (string, error) {
	b := make([]byte, webhookSecretBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", err
	}
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// WebhookKey is the HMAC key of a secret: the bytes its base64 encodes.
func WebhookKey(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %s prefix", ErrBadSecret, WebhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("%w: not base64 of 24 to 64 bytes", ErrBadSecret)
	}
	return key, nil
}

// KEKID names a key-encryption key without revealing it.
func KEKID(kek []byte) string {
	sum := sha256.Sum256(append([]byte("tollgate kek id\x00"), kek...))
	return hex.EncodeToString(sum[:6])
}

// SealSecret encrypts secret with AES-256-GCM under kek, bound to the
// subscription id (the additional data), so a sealed secret copied onto
// another subscription does not open.
func SealSecret(kek []byte, subscriptionID, secret string, rand io.Reader) (events.SealedSecret, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return events.SealedSecret{}, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return events.SealedSecret{}, err
	}
	out := aead.Seal(nonce, nonce, []byte(secret), []byte(subscriptionID))
	return events.SealedSecret{KeyID: KEKID(kek), Ciphertext: base64.StdEncoding.EncodeToString(out)}, nil
}

// OpenSecret decrypts a sealed secret of the subscription.
func OpenSecret(kek []byte, subscriptionID string, sealed events.SealedSecret) (string, error) {
	if sealed.KeyID != KEKID(kek) {
		return "", ErrWrongKEK
	}
	aead, err := newAEAD(kek)
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(sealed.Ciphertext)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", ErrBadSecret
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:n], raw[n:], []byte(subscriptionID))
	if err != nil {
		return "", ErrBadSecret
	}
	return string(plain), nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, not %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
