package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	json "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// keyRing holds the signer of the current signing key, rebuilt when the
// signing-key projection changes (a rotation on any node).
type keyRing struct {
	mu  sync.Mutex
	cur atomic.Pointer[ringKey]
}

// ringKey is an opened signing key.
type ringKey struct {
	gen    uint64 // projections.SigningKeys generation it was opened at
	kid    string
	signer jose.Signer
}

var errNoSigningKey = errors.New("no active signing key")

func signingKeyOf(r projections.SigningKeyRecord) domain.SigningKey {
	return domain.SigningKey{KID: r.KID, Algorithm: r.Algorithm, Public: json.RawMessage(r.Public),
		EncryptedPrivate: r.EncryptedPrivate, CreatedAt: r.CreatedAt, RetiredAt: r.RetiredAt, PublishUntil: r.PublishUntil}
}

// currentSigner returns the newest active key, opened with the KEK.
func (a *API) currentSigner() (*ringKey, error) {
	gen := a.SigningKeys.Generation()
	if k := a.ring.cur.Load(); k != nil && k.gen == gen {
		return k, nil
	}
	a.ring.mu.Lock()
	defer a.ring.mu.Unlock()
	if k := a.ring.cur.Load(); k != nil && k.gen == gen {
		return k, nil
	}
	list, err := a.SigningKeys.List()
	if err != nil {
		return nil, err
	}
	var newest *projections.SigningKeyRecord
	for i := range list {
		if list[i].RetiredAt == nil {
			newest = &list[i]
		}
	}
	if newest == nil {
		return nil, errNoSigningKey
	}
	priv, err := signingKeyOf(*newest).Private(a.cfg.KeyEncryptionKey)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: newest.KID}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, err
	}
	k := &ringKey{gen: gen, kid: newest.KID, signer: signer}
	a.ring.cur.Store(k)
	return k, nil
}

// signingKeyChange builds one event of the signing-key aggregate.
func signingKeyChange(x cmdCtx, p events.Payload, expect events.Expectation) (events.Change, error) {
	meta, err := x.meta(events.AggregateSigningKey, events.SigningKeysID, "", "")
	if err != nil {
		return events.Change{}, err
	}
	ev, err := events.New(meta, p)
	return events.Change{Event: ev, Expect: expect}, err
}

// EnsureSigningKey creates the first signing key of a new event log (one
// node wins: the append expects an empty aggregate) and checks that this
// node's key-encryption key opens the current key.
func (a *API) EnsureSigningKey(ctx context.Context) error {
	seq, err := a.Store.LastSequence(ctx, events.AggregateSigningKey, events.SigningKeysID)
	if err != nil {
		return err
	}
	if seq == 0 {
		x := cmdCtx{rand: a.Rand, now: a.Now(), actor: "system", correlation: "bootstrap"}
		created, err := domain.NewSigningKey(a.Rand, a.cfg.KeyEncryptionKey, x.now)
		if err != nil {
			return err
		}
		change, err := signingKeyChange(x, created, events.ExpectNew)
		if err != nil {
			return err
		}
		res, err := a.Store.Append(ctx, change)
		switch {
		case isConflict(err): // another node created it
			if seq, err = a.Store.LastSequence(ctx, events.AggregateSigningKey, events.SigningKeysID); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			seq = res.Last()
		}
	}
	if err := a.Projector.WaitFor(ctx, seq); err != nil {
		return err
	}
	_, err = a.currentSigner()
	return err
}

// signingKeyView is a signing key as GET /signing-keys shows it: never the
// private part, sealed or not.
type signingKeyView struct {
	KID          string          `json:"kid"`
	Algorithm    string          `json:"alg"`
	Status       string          `json:"status"`
	Published    bool            `json:"published"`
	PublicJWK    json.RawMessage `json:"public_jwk"`
	CreatedAt    time.Time       `json:"created_at"`
	RetiredAt    *time.Time      `json:"retired_at"`
	PublishUntil *time.Time      `json:"publish_until"`
}

func viewSigningKey(r projections.SigningKeyRecord, now time.Time) signingKeyView {
	k := signingKeyOf(r)
	status := "active"
	if !k.Active() {
		status = "retired"
	}
	return signingKeyView{KID: r.KID, Algorithm: r.Algorithm, Status: status, Published: k.Published(now),
		PublicJWK: json.RawMessage(r.Public), CreatedAt: r.CreatedAt, RetiredAt: r.RetiredAt, PublishUntil: r.PublishUntil}
}

// jwks is GET /.well-known/jwks.json: the active key and every retired key
// whose tokens may not have expired yet.
func (a *API) jwks(c *fiber.Ctx) error {
	list, err := a.SigningKeys.List()
	if err != nil {
		return err
	}
	now := a.now(c)
	var buf bytes.Buffer
	buf.WriteString(`{"keys":[`)
	n := 0
	for _, r := range list {
		if !signingKeyOf(r).Published(now) {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(r.Public)
		n++
	}
	buf.WriteString(`]}`)
	c.Set(fiber.HeaderCacheControl, "public, max-age=60")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(buf.Bytes())
}

// listSigningKeys is GET /signing-keys (admin), oldest first.
func (a *API) listSigningKeys(c *fiber.Ctx) error {
	if !principal(c).Admin() {
		return errForbidden
	}
	list, err := a.SigningKeys.List()
	if err != nil {
		return err
	}
	now := a.now(c)
	out := listResponse[signingKeyView]{Data: make([]signingKeyView, 0, len(list))}
	for _, r := range list {
		out.Data = append(out.Data, viewSigningKey(r, now))
	}
	return c.JSON(out)
}

// rotateSigningKey is POST /signing-keys/rotate (admin): a new key signs
// from now on; the previous one is retired but stays in the JWKS until its
// last token has expired. Both events are one atomic append that expects
// the aggregate's last sequence, so concurrent rotations cannot both win.
func (a *API) rotateSigningKey(c *fiber.Ctx) error {
	if !principal(c).Admin() {
		return errForbidden
	}
	for attempt := 0; ; attempt++ {
		list, err := a.SigningKeys.List()
		if err != nil {
			return err
		}
		version, err := a.SigningKeys.AggregateVersion()
		if err != nil {
			return err
		}
		x := a.cmd(c)
		var changes []events.Change
		for _, r := range list {
			retired, err := signingKeyOf(r).Retire(x.now)
			if err != nil {
				continue // retired before
			}
			ch, err := signingKeyChange(x, retired, events.ExpectAny)
			if err != nil {
				return err
			}
			changes = append(changes, ch)
		}
		// Key material and nonce always come from crypto/rand, even when an
		// Idempotency-Key seeds the request's randomness.
		created, err := domain.NewSigningKey(a.Rand, a.cfg.KeyEncryptionKey, x.now)
		if err != nil {
			return err
		}
		ch, err := signingKeyChange(x, created, events.ExpectAny)
		if err != nil {
			return err
		}
		changes = append(changes, ch)
		changes[0].Expect = events.ExpectVersion(version)
		retry, err := a.commitOrRetry(c, attempt, "the signing keys are being rotated concurrently; retry", changes...)
		if retry {
			continue
		}
		if err != nil {
			return err
		}
		return a.answerRotation(c, created.KID, x.now)
	}
}

// answerRotation shows the new key. A retried request whose first attempt
// was stored shows the key that attempt created: the newest active one.
func (a *API) answerRotation(c *fiber.Ctx, kid string, now time.Time) error {
	list, err := a.SigningKeys.List()
	if err != nil {
		return err
	}
	var show *projections.SigningKeyRecord
	for i := range list {
		if list[i].KID == kid {
			show = &list[i]
			break
		}
		if list[i].RetiredAt == nil {
			show = &list[i]
		}
	}
	if show == nil {
		return fmt.Errorf("signing key %s applied but missing from the projection", kid)
	}
	return c.Status(fiber.StatusCreated).JSON(viewSigningKey(*show, now))
}
