package api

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
)

// IdempotencyStore remembers, for 24 hours, the outcome of every write that
// came with an Idempotency-Key, in a JetStream key-value bucket shared by all
// nodes. Responses (which may hold a freshly issued secret) and the request's
// random seed are stored encrypted under a key derived from the caller's own
// credential: only the caller who made the request can replay it.
type IdempotencyStore struct {
	kv jetstream.KeyValue
}

// IdempotencyBucket is the key-value bucket's name.
const IdempotencyBucket = "TOLLGATE_IDEMPOTENCY"

// EnsureIdempotencyStore creates or updates the bucket.
func EnsureIdempotencyStore(ctx context.Context, js jetstream.JetStream, replicas int) (*IdempotencyStore, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      IdempotencyBucket,
		Description: "Tollgate Idempotency-Key outcomes (encrypted)",
		TTL:         24 * time.Hour,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: idempotency bucket: %v", events.ErrUnavailable, err)
	}
	return &IdempotencyStore{kv: kv}, nil
}

type idemRecord struct {
	Done        bool      `json:"done"`
	Fingerprint string    `json:"fp"`
	Seed        []byte    `json:"seed"` // encrypted
	StartedAt   time.Time `json:"started_at"`
	Released    bool      `json:"released,omitempty"`
	Status      int       `json:"status,omitempty"`
	Body        []byte    `json:"body,omitempty"` // encrypted
}

// A pending record older than this belongs to a request that died; a retry
// takes it over with the same seed, so its events dedupe.
const idemStale = 30 * time.Second

const headerIdempotencyKey = "Idempotency-Key"

// idempotent makes a write replayable: a repeated Idempotency-Key answers
// with the first response (same status and body).
func (a *API) idempotent(c *fiber.Ctx) error {
	key := c.Get(headerIdempotencyKey)
	if key == "" || a.Idempotency == nil {
		return c.Next()
	}
	if !saneHeaderValue(key, 255) {
		return invalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
	}
	p := principal(c)
	kvKey := idemKVKey(p.AccountID, p.TokenID, key)
	fp := sha256.Sum256(append([]byte(c.Method()+" "+c.Path()+"?"+string(c.Request().URI().QueryString())+"\n"), requestBody(c)...))
	fingerprint := hex.EncodeToString(fp[:])
	aead, err := idemCipher(p.secret, kvKey)
	if err != nil {
		return err
	}
	ctx, cancel := a.writeCtx(c)
	defer cancel()

	var rec idemRecord
	var rev uint64
	for attempt := 0; ; attempt++ {
		if attempt > 3 {
			return conflict("a request with this Idempotency-Key is in progress")
		}
		entry, err := a.Idempotency.kv.Get(ctx, kvKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			seed := make([]byte, 32)
			if _, err := io.ReadFull(rand.Reader, seed); err != nil {
				return err
			}
			rec = idemRecord{Fingerprint: fingerprint, Seed: seal(aead, seed), StartedAt: a.Now().UTC()}
			rev, err = a.Idempotency.kv.Create(ctx, kvKey, mustJSON(rec))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return unavailable(err)
			}
			break
		}
		if err != nil {
			return unavailable(err)
		}
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			return err
		}
		if rec.Fingerprint != fingerprint {
			return conflict("Idempotency-Key was already used with a different request")
		}
		if rec.Done {
			raw, err := open(aead, rec.Body)
			var out storedResponse
			if err != nil || json.Unmarshal(raw, &out) != nil {
				return conflict("Idempotency-Key was already used with a different request")
			}
			for k, v := range out.Headers {
				c.Set(k, v)
			}
			c.Set("Idempotent-Replayed", "true")
			return c.Status(rec.Status).Send(out.Body)
		}
		if !rec.Released && a.Now().Sub(rec.StartedAt) < idemStale {
			return &Error{Status: fiber.StatusConflict, Code: "conflict", RetryAfter: 1,
				Message: "a request with this Idempotency-Key is in progress"}
		}
		// Take over a dead or failed attempt, keeping its seed and time.
		rec.Released = false
		rev, err = a.Idempotency.kv.Update(ctx, kvKey, mustJSON(rec), entry.Revision())
		if err != nil {
			continue
		}
		break
	}
	seed, err := open(aead, rec.Seed)
	if err != nil {
		return conflict("Idempotency-Key was already used with a different request")
	}
	var s [32]byte
	copy(s[:], seed)
	c.Locals(localRand, io.Reader(mrand.NewChaCha8(s)))
	c.Locals(localNow, rec.StartedAt)

	handlerErr := c.Next()
	if handlerErr != nil {
		// Render the error now so its response can be stored like any other.
		if err := c.App().ErrorHandler(c, handlerErr); err != nil {
			return err
		}
	}
	status := c.Response().StatusCode()
	if status >= 500 {
		rec.Released = true
		_, _ = a.Idempotency.kv.Update(ctx, kvKey, mustJSON(rec), rev)
		return nil
	}
	out := storedResponse{Headers: map[string]string{}, Body: c.Response().Body()}
	for _, h := range replayedHeaders {
		if v := c.Response().Header.Peek(h); len(v) > 0 {
			out.Headers[h] = string(v)
		}
	}
	rec.Done, rec.Status, rec.Body = true, status, seal(aead, mustJSON(out))
	if _, err := a.Idempotency.kv.Update(ctx, kvKey, mustJSON(rec), rev); err != nil {
		a.Logger.Warn("idempotency outcome not stored", "request_id", requestID(c), "err", err)
	}
	return nil
}

// storedResponse is what a replay sends again; sealed before storage.
type storedResponse struct {
	Headers map[string]string `json:"h"`
	Body    []byte            `json:"b"`
}

// replayedHeaders are the response headers a replay repeats.
var replayedHeaders = []string{fiber.HeaderContentType, fiber.HeaderCacheControl, fiber.HeaderLocation}

func idemKVKey(account, tokenID, key string) string {
	h := sha256.Sum256([]byte(account + "\x00" + tokenID + "\x00" + key))
	return hex.EncodeToString(h[:])
}

func idemCipher(secret, salt string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, []byte(secret), []byte(salt), "tollgate/idempotency/v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(aead cipher.AEAD, plain []byte) []byte {
	nonce := make([]byte, aead.NonceSize())
	_, _ = io.ReadFull(rand.Reader, nonce)
	return aead.Seal(nonce, nonce, plain, nil)
}

func open(aead cipher.AEAD, sealed []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed value too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
}

func mustJSON(v any) []byte {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	return buf.Bytes()
}

// rand is the request's entropy: a seeded stream under an Idempotency-Key
// (so a retried request regenerates the same ids and secrets), crypto/rand
// otherwise.
func (a *API) rand(c *fiber.Ctx) io.Reader {
	if r, ok := c.Locals(localRand).(io.Reader); ok {
		return r
	}
	return a.Rand
}
