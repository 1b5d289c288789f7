package projections_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// Access tokens by id; token.revoked on aggregate access ends an access
// token and leaves an API token with the same id alone (and the other way
// round).
func TestAccessApply(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	access, tokens := projections.NewAccess(db), projections.NewTokens(db)
	p := newProjector(t, db, projections.Config{}, access, tokens)
	run(t, p, log.js)

	const id = "tok_0123456789abcdef"
	issued := log.append(t, events.AggregateAccess, id, "acc_1", events.AccessIssued{
		ID: id, Hash: "h", Client: "cli_1", ClientID: "ops:1", AccountID: "acc_1", Environment: "live",
		Scopes: []string{"vps:read"}, Subject: "ops:1", Audience: []string{"https://auth.example"}, Format: "opaque",
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
	})
	log.append(t, events.AggregateToken, id, "acc_1", events.TokenCreated{ID: id, AccountID: "acc_1", Name: "api", Scopes: []string{"vps:read"},
		Environment: "live", Hash: "api-hash", CreatedAt: t0})
	revoked := log.append(t, events.AggregateAccess, id, "acc_1", events.TokenRevoked{ID: id, AccountID: "acc_1", RevokedAt: t0.Add(time.Minute)})
	waitFor(t, p, revoked)

	rec, ok, err := access.Get(id)
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	if rec.Hash != "h" || rec.ClientID != "ops:1" || rec.Client != "cli_1" || rec.Subject != "ops:1" || len(rec.Audience) != 1 ||
		!rec.ExpiresAt.Equal(t0.Add(time.Hour)) || rec.RevokedAt == nil || rec.Version != revoked || rec.Version == issued {
		t.Fatalf("access record %+v", rec)
	}
	api, ok, err := tokens.Get(id)
	if err != nil || !ok || api.RevokedAt != nil {
		t.Fatalf("the API token was revoked by an access token's revocation: %+v", api)
	}
	if _, ok, _ := access.Get("tok_unknown"); ok {
		t.Fatal("unknown id found")
	}
}

func TestSigningKeysApply(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	keys := projections.NewSigningKeys(db)
	p := newProjector(t, db, projections.Config{}, keys)
	run(t, p, log.js)

	gen := keys.Generation()
	first := log.append(t, events.AggregateSigningKey, events.SigningKeysID, "", events.SigningKeyCreated{
		KID: "sk_1", Algorithm: "ES256", Public: []byte(`{"kty":"EC"}`), EncryptedPrivate: "sealed1", CreatedAt: t0})
	waitFor(t, p, first)
	list, err := keys.List()
	if err != nil || len(list) != 1 || list[0].KID != "sk_1" || string(list[0].Public) != `{"kty":"EC"}` || keys.Generation() == gen {
		t.Fatalf("List = %+v, %v (generation %d)", list, err, keys.Generation())
	}
	log.append(t, events.AggregateSigningKey, events.SigningKeysID, "", events.SigningKeyRetired{
		KID: "sk_1", RetiredAt: t0.Add(time.Hour), PublishUntil: t0.Add(25 * time.Hour)})
	second := log.append(t, events.AggregateSigningKey, events.SigningKeysID, "", events.SigningKeyCreated{
		KID: "sk_0", Algorithm: "ES256", Public: []byte(`{"kty":"EC","kid":"sk_0"}`), EncryptedPrivate: "sealed2", CreatedAt: t0.Add(time.Hour)})
	waitFor(t, p, second)
	list, err = keys.List()
	if err != nil || len(list) != 2 || list[0].KID != "sk_1" || list[1].KID != "sk_0" || list[0].RetiredAt == nil ||
		!list[0].PublishUntil.Equal(t0.Add(25*time.Hour)) || list[1].RetiredAt != nil {
		t.Fatalf("after rotation (oldest first) %+v, %v", list, err)
	}
	if v, err := keys.AggregateVersion(); err != nil || v != second {
		t.Fatalf("AggregateVersion = %d, %v, want %d", v, err, second)
	}
}
