package api

import (
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	json "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// accessTokenIDPrefix starts the id of every access token: tok_ and the
// selector of its tg_at_ string, or the jti of a JWT access token.
const accessTokenIDPrefix = "tok_"

// issueAccessToken makes an access token in the client's format, appends
// access.issued and returns once this node has applied it: the token is in
// the event log before anyone sees it.
func (a *API) issueAccessToken(c *fiber.Ctx, client domain.Client, scopes []string, now time.Time) (string, events.AccessIssued, error) {
	token, change, issued, err := a.newAccessToken(c, client, domain.IssueAccess{Scopes: scopes, Now: now})
	if err != nil {
		return "", events.AccessIssued{}, err
	}
	if _, err := a.commit(c, change); err != nil {
		return "", events.AccessIssued{}, err
	}
	return token, issued, nil
}

// newAccessToken makes an access token in the client's format and the
// access.issued change that records it, for the caller to append (alone,
// or with the events of a code redemption or a refresh).
func (a *API) newAccessToken(c *fiber.Ctx, client domain.Client, cmd domain.IssueAccess) (string, events.Change, events.AccessIssued, error) {
	x := a.cmd(c)
	x.actor = client.ID
	cmd.Audience = []string{a.issuer()}
	var token string
	var key *ringKey
	var err error
	fail := func(err error) (string, events.Change, events.AccessIssued, error) {
		return "", events.Change{}, events.AccessIssued{}, err
	}
	if client.Settings.AccessTokenFormat == domain.AccessTokenJWT {
		if key, err = a.currentSigner(); err != nil {
			return fail(err)
		}
		cmd.KeyID = key.kid
		if cmd.ID, err = domain.NewID(x.rand, accessTokenIDPrefix, 16); err != nil {
			return fail(err)
		}
	} else {
		var cred domain.Credential
		if token, cred, err = domain.NewCredential(x.rand, domain.PrefixAccessToken); err != nil {
			return fail(err)
		}
		cmd.ID, cmd.Hash = cred.TokenID(), domain.HashSecret(token)
	}
	issued, err := client.IssueAccessToken(cmd)
	if err != nil {
		return fail(err)
	}
	if key != nil {
		if token, err = key.signAccessToken(a.issuer(), issued); err != nil {
			return fail(err)
		}
		issued.Hash = domain.HashSecret(token)
	}
	meta, err := x.meta(events.AggregateAccess, issued.ID, issued.AccountID, issued.Environment)
	if err != nil {
		return fail(err)
	}
	ev, err := events.New(meta, issued)
	if err != nil {
		return fail(err)
	}
	return token, events.Change{Event: ev, Expect: events.ExpectNew}, issued, nil
}

// accessClaims are the claims of an RFC 9068 JWT access token.
type accessClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience any    `json:"aud"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	JTI      string `json:"jti"`
}

// audienceClaim is aud as a string when there is one, else a list.
func audienceClaim(aud []string) any {
	if len(aud) == 1 {
		return aud[0]
	}
	return aud
}

// signAccessToken signs issued as an at+jwt with k.
func (k *ringKey) signAccessToken(issuer string, issued events.AccessIssued) (string, error) {
	payload, err := json.Marshal(accessClaims{
		Issuer: issuer, Subject: issued.Subject, Audience: audienceClaim(issued.Audience), ClientID: issued.ClientID,
		Scope: strings.Join(issued.Scopes, " "), IssuedAt: issued.IssuedAt.Unix(), Expiry: issued.ExpiresAt.Unix(), JTI: issued.JTI,
	})
	if err != nil {
		return "", err
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// maxJWTLength bounds a presented JWT access token.
const maxJWTLength = 8 << 10

// accessTokenID names the record of a presented access token without
// trusting it: the selector of a well-formed tg_at_ string, or the jti of
// a JWT signed with ES256. The caller compares the token's hash with the
// record's, which is what authenticates it.
func accessTokenID(token string) (string, bool) {
	if strings.HasPrefix(token, domain.PrefixAccessToken) {
		cred, err := domain.ParseCredential(token)
		if err != nil || cred.Prefix != domain.PrefixAccessToken {
			return "", false
		}
		return cred.TokenID(), true
	}
	if len(token) > maxJWTLength || strings.Count(token, ".") != 2 {
		return "", false
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", false
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if tok.UnsafeClaimsWithoutVerification(&claims) != nil || !strings.HasPrefix(claims.JTI, accessTokenIDPrefix) || !events.ValidID(claims.JTI) {
		return "", false
	}
	return claims.JTI, true
}

// lookupAccess finds the record of a presented access token and checks
// that the token is the one issued (SHA-256 compared in constant time).
// found is false for anything else. A token issued on another node a
// moment ago is looked up in the stream; ids the stream does not know are
// remembered for a few seconds.
func (a *API) lookupAccess(c *fiber.Ctx, token string) (projections.AccessRecord, bool, error) {
	id, ok := accessTokenID(token)
	if !ok {
		return projections.AccessRecord{}, false, nil
	}
	rec, found, err := a.Access.Get(id)
	if err == nil && !found {
		unknownKey := "access/" + id
		if a.unknown.has(unknownKey) {
			return rec, false, nil
		}
		ctx, cancel := a.writeCtx(c)
		exists, ferr := a.fresh(ctx, events.AggregateAccess, id)
		cancel()
		switch {
		case ferr != nil:
			return rec, false, ferr
		case exists:
			rec, found, err = a.Access.Get(id)
		default:
			a.unknown.add(unknownKey)
		}
	}
	if err != nil || !found {
		return projections.AccessRecord{}, false, err
	}
	if !domain.MatchesHash(token, rec.Hash) {
		return projections.AccessRecord{}, false, nil
	}
	return rec, true, nil
}

func accessOf(r projections.AccessRecord) domain.AccessToken {
	return domain.AccessToken{ID: r.ID, AccountID: r.AccountID, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt}
}
