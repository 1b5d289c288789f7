package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// jwtAuth is private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): the
// client signs a short-lived JWT with a key from its registered JWKS.
type jwtAuth struct{ a *API }

// The assertion type of RFC 7523 §2.2.
const jwtBearerAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Client assertion limits.
const (
	// assertionMaxLifetime bounds how far ahead an assertion's exp may be.
	assertionMaxLifetime = 5 * time.Minute
	// assertionLeeway is the clock skew allowed on exp, nbf and iat.
	assertionLeeway  = 30 * time.Second
	maxAssertionSize = 16 << 10
	maxJTILength     = 256
)

// assertionAlgorithms are the signature algorithms a client may use,
// exactly what discovery lists.
var assertionAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// clientAssertion is a parsed, not yet verified, client_assertion.
type clientAssertion struct {
	token  *jwt.JSONWebToken
	claims jwt.Claims
}

func (*jwtAuth) name() string { return domain.AuthPrivateKeyJWT }

func (*jwtAuth) presented(r *oauthRequest) bool {
	_, typ := r.param("client_assertion_type")
	_, assertion := r.param("client_assertion")
	return typ || assertion
}

func (*jwtAuth) clientID(r *oauthRequest) (string, *oauthError) {
	typ, _ := r.param("client_assertion_type")
	raw, ok := r.param("client_assertion")
	switch {
	case typ != jwtBearerAssertion:
		return "", errInvalidClient.describe("client_assertion_type must be %s", jwtBearerAssertion)
	case !ok:
		return "", errInvalidClient.describe("client_assertion is required")
	case len(raw) > maxAssertionSize:
		return "", errInvalidClient.describe("client_assertion is larger than %d bytes", maxAssertionSize)
	}
	tok, err := jwt.ParseSigned(raw, assertionAlgorithms)
	if err != nil {
		return "", errInvalidClient.describe("client_assertion must be a compact JWS signed with RS256, ES256 or EdDSA")
	}
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return "", errInvalidClient.describe("client_assertion claims are malformed")
	}
	if claims.Issuer == "" || claims.Issuer != claims.Subject {
		return "", errInvalidClient.describe("client_assertion iss and sub must both be the client_id")
	}
	r.assertion = &clientAssertion{token: tok, claims: claims}
	return claims.Subject, nil
}

func (m *jwtAuth) verify(c *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) *oauthError {
	as := r.assertion
	if oe := verifyAssertionSignature(as, client); oe != nil {
		return oe
	}
	claims := as.claims // decoded again by Claims: the verified payload
	err := claims.ValidateWithLeeway(jwt.Expected{
		Issuer: client.ClientID, Subject: client.ClientID, AnyAudience: m.a.assertionAudiences(), Time: r.now,
	}, assertionLeeway)
	switch {
	case errors.Is(err, jwt.ErrInvalidAudience):
		return errInvalidClient.describe("client_assertion aud must be the token endpoint %s or the issuer", m.a.issuer()+"/oauth2/token")
	case err != nil:
		return errInvalidClient.describe("client_assertion: %s", jwtMessage(err))
	case claims.Expiry == nil:
		return errInvalidClient.describe("client_assertion must have exp")
	case claims.Expiry.Time().After(r.now.Add(assertionMaxLifetime + assertionLeeway)):
		return errInvalidClient.describe("client_assertion exp must be at most %d seconds ahead", int(assertionMaxLifetime/time.Second))
	case claims.ID == "" || len(claims.ID) > maxJTILength:
		return errInvalidClient.describe("client_assertion must have a jti of 1 to %d characters", maxJTILength)
	}
	ctx, cancel := m.a.writeCtx(c)
	defer cancel()
	switch err := m.a.Assertions.use(ctx, client.ClientID, claims.ID); {
	case errors.Is(err, errAssertionReplayed):
		return errInvalidClient.describe("client_assertion was already used (jti %q)", truncate(claims.ID, 64))
	case err != nil:
		return failure(err)
	}
	return nil
}

// verifyAssertionSignature checks the assertion against the client's keys:
// the one its kid names, or, without a kid, each key in turn. On success
// the claims are the verified payload's.
func verifyAssertionSignature(as *clientAssertion, client projections.ClientRecord) *oauthError {
	var set jose.JSONWebKeySet
	if len(client.JWKS) == 0 || json.Unmarshal(client.JWKS, &set) != nil {
		return errInvalidClient.describe("the client has no usable JWKS")
	}
	keys := set.Keys
	if kid := as.token.Headers[0].KeyID; kid != "" {
		keys = set.Key(kid)
	}
	for _, k := range keys {
		var claims jwt.Claims
		if err := as.token.Claims(k.Key, &claims); err == nil {
			as.claims = claims
			return nil
		}
	}
	return errInvalidClient.describe("client_assertion signature does not verify with the client's JWKS")
}

func jwtMessage(err error) string {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return "exp is in the past"
	case errors.Is(err, jwt.ErrNotValidYet):
		return "nbf is in the future"
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return "iat is in the future"
	case errors.Is(err, jwt.ErrInvalidIssuer), errors.Is(err, jwt.ErrInvalidSubject):
		return "iss and sub must both be the client_id"
	}
	return err.Error()
}

// assertionAudiences are the aud values a client assertion may carry: the
// issuer and the token endpoint under each of its paths.
func (a *API) assertionAudiences() jwt.Audience {
	iss := a.issuer()
	out := jwt.Audience{iss}
	for _, p := range oauthPrefixes {
		out = append(out, iss+p+"/token")
	}
	return out
}

// AssertionStore remembers, cluster-wide, the jti of every client
// assertion for longer than any assertion lives, in a JetStream key-value
// bucket: a replayed assertion is refused on every node.
type AssertionStore struct {
	kv jetstream.KeyValue
}

// AssertionBucket is the key-value bucket of used assertions.
const AssertionBucket = "TOLLGATE_ASSERTIONS"

// assertionMemory is how long a jti is remembered: longer than the longest
// accepted assertion lives (exp at most 5 minutes ahead plus leeway).
const assertionMemory = 10 * time.Minute

var errAssertionReplayed = errors.New("client assertion replayed")

// EnsureAssertionStore creates or updates the bucket.
func EnsureAssertionStore(ctx context.Context, js jetstream.JetStream, replicas int) (*AssertionStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      AssertionBucket,
		Description: "Tollgate: jti of used private_key_jwt client assertions",
		TTL:         assertionMemory,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: assertion bucket: %v", events.ErrUnavailable, err)
	}
	return &AssertionStore{kv: kv}, nil
}

// use records the assertion's jti for clientID; a jti seen before is
// [errAssertionReplayed]. Create is atomic across the cluster.
func (s *AssertionStore) use(ctx context.Context, clientID, jti string) error {
	sum := sha256.Sum256([]byte(clientID + "\x00" + jti))
	_, err := s.kv.Create(ctx, hex.EncodeToString(sum[:]), []byte{1})
	if errors.Is(err, jetstream.ErrKeyExists) {
		return errAssertionReplayed
	}
	if err != nil {
		return fmt.Errorf("%w: assertion bucket: %v", events.ErrUnavailable, err)
	}
	return nil
}
