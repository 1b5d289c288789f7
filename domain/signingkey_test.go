package domain_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

var testKEK = bytes.Repeat([]byte{7}, domain.KEKSize)

func keyOf(ev events.SigningKeyCreated) domain.SigningKey {
	return domain.SigningKey{KID: ev.KID, Algorithm: ev.Algorithm, Public: ev.Public, EncryptedPrivate: ev.EncryptedPrivate, CreatedAt: ev.CreatedAt}
}

func TestSigningKeySealedAtRest(t *testing.T) {
	t.Parallel()
	ev, err := domain.NewSigningKey(rand.Reader, testKEK, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev.KID, "sk_") || ev.Algorithm != "ES256" || !ev.CreatedAt.Equal(now) {
		t.Fatalf("created %+v", ev)
	}
	var pub jose.JSONWebKey
	if err := json.Unmarshal(ev.Public, &pub); err != nil || !pub.IsPublic() || pub.KeyID != ev.KID || pub.Algorithm != "ES256" || pub.Use != "sig" {
		t.Fatalf("public JWK %s: %v", ev.Public, err)
	}
	raw, _ := json.Marshal(ev)
	if strings.Contains(string(raw), `"d":`) || strings.Contains(string(raw), "PRIVATE") {
		t.Fatalf("the event holds the private key in the clear: %s", raw)
	}
	key := keyOf(ev)
	signer, err := key.Private(testKEK)
	if err != nil {
		t.Fatal(err)
	}
	// The opened key is the private half of the published one.
	digest := sha256.Sum256([]byte("x"))
	sig, err := signer.Sign(rand.Reader, digest[:], nil)
	if err != nil || !ecdsa.VerifyASN1(pub.Key.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatalf("signature does not verify with the public JWK: %v", err)
	}
	// Another KEK, a moved ciphertext or a tampered one cannot open it.
	other := bytes.Repeat([]byte{8}, domain.KEKSize)
	if _, err := key.Private(other); !errors.Is(err, domain.ErrKEK) {
		t.Fatalf("other KEK: %v", err)
	}
	moved := key
	moved.KID = "sk_other"
	if _, err := moved.Private(testKEK); !errors.Is(err, domain.ErrKEK) {
		t.Fatalf("ciphertext under another kid: %v", err)
	}
	if _, err := domain.NewSigningKey(rand.Reader, testKEK[:16], now); !errors.Is(err, domain.ErrKEK) {
		t.Fatalf("short KEK: %v", err)
	}
}

func TestSigningKeyRetirement(t *testing.T) {
	t.Parallel()
	ev, err := domain.NewSigningKey(rand.Reader, testKEK, now)
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(ev)
	if !key.Active() || !key.Published(now.Add(1000*time.Hour)) {
		t.Fatal("an active key is published")
	}
	retired, err := key.Retire(now)
	if err != nil || retired.KID != key.KID || !retired.PublishUntil.Equal(now.Add(24*time.Hour+time.Minute)) {
		t.Fatalf("retire %+v, %v", retired, err)
	}
	key.RetiredAt, key.PublishUntil = &retired.RetiredAt, &retired.PublishUntil
	if key.Active() || !key.Published(now.Add(24*time.Hour)) || key.Published(now.Add(24*time.Hour+time.Minute)) {
		t.Fatal("a retired key is published until its last token expired")
	}
	if _, err := key.Retire(now); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("retired twice: %v", err)
	}
}
