package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// clientRequest is the body of POST /clients. Absent fields take the
// defaults of [domain.ClientSpec]; an absent client_id is generated.
type clientRequest struct {
	ClientID                *string         `json:"client_id"`
	Name                    string          `json:"name"`
	GrantTypes              []string        `json:"grant_types"`
	Scopes                  []string        `json:"scopes"`
	DefaultScopes           []string        `json:"default_scopes"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks"`
	RedirectURIs            []string        `json:"redirect_uris"`
	AccessTokenTTL          *int64          `json:"access_token_ttl"`
	AccessTokenFormat       string          `json:"access_token_format"`
	RefreshTokenGracePeriod int64           `json:"refresh_token_grace_period"`
}

// clientPatch is the body of PATCH /clients/:id; absent fields keep their
// value, "jwks": null removes the key set. client_id cannot change.
type clientPatch struct {
	ClientID                *string         `json:"client_id"`
	Name                    *string         `json:"name"`
	GrantTypes              *[]string       `json:"grant_types"`
	Scopes                  *[]string       `json:"scopes"`
	DefaultScopes           *[]string       `json:"default_scopes"`
	TokenEndpointAuthMethod *string         `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks"`
	RedirectURIs            *[]string       `json:"redirect_uris"`
	AccessTokenTTL          *int64          `json:"access_token_ttl"`
	AccessTokenFormat       *string         `json:"access_token_format"`
	RefreshTokenGracePeriod *int64          `json:"refresh_token_grace_period"`
}

// errTTLZero: 0 would read as "the default" in a spec, so an explicit 0 is
// refused here rather than silently becoming 3600.
var errTTLZero = invalidRequest("access_token_ttl must be from 60 to 86400 seconds",
	domain.FieldProblem{Field: "access_token_ttl", Message: "must be from 60 to 86400 seconds"})

func (r clientRequest) spec() (domain.ClientSpec, error) {
	s := domain.ClientSpec{
		Name: r.Name, GrantTypes: r.GrantTypes, Scopes: r.Scopes, DefaultScopes: r.DefaultScopes,
		TokenEndpointAuthMethod: r.TokenEndpointAuthMethod, JWKS: r.JWKS, RedirectURIs: r.RedirectURIs,
		AccessTokenFormat: r.AccessTokenFormat, RefreshTokenGracePeriod: r.RefreshTokenGracePeriod,
	}
	if r.AccessTokenTTL != nil {
		if *r.AccessTokenTTL == 0 {
			return s, errTTLZero
		}
		s.AccessTokenTTL = *r.AccessTokenTTL
	}
	return s, nil
}

// merge applies the patch onto spec.
func (p clientPatch) merge(spec domain.ClientSpec) (domain.ClientSpec, error) {
	set := func(dst *[]string, src *[]string) {
		if src != nil {
			*dst = *src
		}
	}
	if p.Name != nil {
		spec.Name = *p.Name
	}
	set(&spec.GrantTypes, p.GrantTypes)
	set(&spec.Scopes, p.Scopes)
	set(&spec.DefaultScopes, p.DefaultScopes)
	set(&spec.RedirectURIs, p.RedirectURIs)
	if p.TokenEndpointAuthMethod != nil {
		spec.TokenEndpointAuthMethod = *p.TokenEndpointAuthMethod
	}
	if p.JWKS != nil {
		spec.JWKS = p.JWKS // "null" removes the set
	}
	if p.AccessTokenTTL != nil {
		if *p.AccessTokenTTL == 0 {
			return spec, errTTLZero
		}
		spec.AccessTokenTTL = *p.AccessTokenTTL
	}
	if p.AccessTokenFormat != nil {
		spec.AccessTokenFormat = *p.AccessTokenFormat
	}
	if p.RefreshTokenGracePeriod != nil {
		spec.RefreshTokenGracePeriod = *p.RefreshTokenGracePeriod
	}
	return spec, nil
}

// clientView is a client as the API shows it. ClientSecret is set only in
// the answer that issued it.
type clientView struct {
	ID                      string          `json:"id"`
	ClientID                string          `json:"client_id"`
	ClientSecret            string          `json:"client_secret,omitempty"`
	AccountID               string          `json:"account_id"`
	Environment             string          `json:"environment"`
	Name                    string          `json:"name"`
	GrantTypes              []string        `json:"grant_types"`
	Scopes                  []string        `json:"scopes"`
	DefaultScopes           []string        `json:"default_scopes"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks"`
	RedirectURIs            []string        `json:"redirect_uris"`
	AccessTokenTTL          int64           `json:"access_token_ttl"`
	AccessTokenFormat       string          `json:"access_token_format"`
	RefreshTokenGracePeriod int64           `json:"refresh_token_grace_period"`
	Status                  string          `json:"status"`
	// PreviousSecretValidUntil is when a rotated-away secret stops working;
	// null when none is accepted any more.
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until"`
	CreatedAt                time.Time  `json:"created_at"`
	UpdatedAt                time.Time  `json:"updated_at"`
}

func viewClient(r projections.ClientRecord, now time.Time) clientView {
	jwks := r.JWKS
	if len(jwks) == 0 {
		jwks = json.RawMessage("null")
	}
	v := clientView{
		ID: r.ID, ClientID: r.ClientID, AccountID: r.AccountID, Environment: r.Environment, Name: r.Name,
		GrantTypes: nonNil(r.GrantTypes), Scopes: nonNil(r.Scopes), DefaultScopes: nonNil(r.DefaultScopes),
		TokenEndpointAuthMethod: r.TokenEndpointAuthMethod, JWKS: jwks, RedirectURIs: nonNil(r.RedirectURIs),
		AccessTokenTTL: r.AccessTokenTTL, AccessTokenFormat: r.AccessTokenFormat, Status: clientOf(r).Status(),
		RefreshTokenGracePeriod: r.RefreshTokenGracePeriod,
		CreatedAt:               r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.PreviousSecretHash != "" && r.PreviousValidUntil != nil && now.Before(*r.PreviousValidUntil) {
		v.PreviousSecretValidUntil = r.PreviousValidUntil
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// clientOf turns the read model into the aggregate that decides commands.
func clientOf(r projections.ClientRecord) domain.Client {
	return domain.Client{
		ID: r.ID, ClientID: r.ClientID, AccountID: r.AccountID, Environment: r.Environment, Settings: r.ClientSettings,
		SecretHash: r.SecretHash, PreviousSecretHash: r.PreviousSecretHash, PreviousValidUntil: r.PreviousValidUntil,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, DeletedAt: r.DeletedAt, Version: r.Version,
	}
}

// newClientSecret generates a client secret and its stored hash.
func newClientSecret(x cmdCtx) (string, string, error) {
	secret, _, err := domain.NewCredential(x.rand, domain.PrefixClientSecret)
	return secret, domain.HashSecret(secret), err
}

func (a *API) createClient(c *fiber.Ctx) error {
	var req clientRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p := principal(c)
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	x := a.cmd(c)
	id, err := domain.NewID(x.rand, domain.ClientIDPrefix, 20)
	if err != nil {
		return err
	}
	cmd := domain.CreateClient{ID: id, AccountID: account, Environment: p.Environment, Spec: spec, GrantorScopes: p.Scopes}
	if req.ClientID != nil {
		if *req.ClientID == "" {
			return invalidRequest("client_id must not be empty: leave it out to have one generated",
				domain.FieldProblem{Field: "client_id", Message: "must be 1 to 200 printable characters"})
		}
		cmd.ClientID = *req.ClientID
	}
	var secret string
	if domain.ClientUsesSecret(spec.TokenEndpointAuthMethod) {
		if secret, cmd.SecretHash, err = newClientSecret(x); err != nil {
			return err
		}
	}
	// The catalog first: a scope that does not exist is a bad request, not
	// one the caller lacks.
	if _, err := a.lookupScopes(req.Scopes); err != nil {
		return err
	}
	created, claimed, err := domain.NewClient(cmd, x.now)
	if err != nil {
		return err
	}
	createdChange, err := clientChange(x, events.AggregateClient, created.ID, created.AccountID, created.Environment, created)
	if err != nil {
		return err
	}
	claimChange, err := clientChange(x, events.AggregateClientID, events.ClientIDKey(created.ClientID), created.AccountID, created.Environment, claimed)
	if err != nil {
		return err
	}
	createdChange.Expect = events.ExpectNew
	if err := a.claimAndCreate(c, created.ClientID, createdChange, claimChange); err != nil {
		return err
	}
	rec, ok, err := a.Clients.Get(id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("client %s applied but missing from the projection", id)
	}
	view := viewClient(rec, x.now)
	view.ClientSecret = secret
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderLocation, "/clients/"+id)
	return c.Status(fiber.StatusCreated).JSON(view)
}

// clientChange builds one event of a client command; the caller sets the
// expectation.
func clientChange(x cmdCtx, aggregateType, aggregateID, account, env string, p events.Payload) (events.Change, error) {
	meta, err := x.meta(aggregateType, aggregateID, account, env)
	if err != nil {
		return events.Change{}, err
	}
	ev, err := events.New(meta, p)
	return events.Change{Event: ev}, err
}

// claimAndCreate appends client.created with the claim on its client_id in
// one atomic batch (see createWithClaim).
func (a *API) claimAndCreate(c *fiber.Ctx, clientID string, created, claim events.Change) error {
	return a.createWithClaim(c, created, claim, events.AggregateClientID, events.ClientIDKey(clientID),
		func() (claimState, bool, error) {
			cl, ok, err := a.Clients.Claim(clientID)
			return claimState{cl.Released, cl.Version}, ok, err
		}, fmt.Sprintf("client_id %q is taken", clientID))
}

// claimState is what createWithClaim needs of a unique-name claim.
type claimState struct {
	released bool
	version  uint64
}

// createWithClaim appends a create event with the claim on its unique name
// (client_id, username) in one atomic batch. The claim expects an empty
// claim aggregate, or the last event of a released claim; this node's view
// of the claim may lag behind the stream, so a conflict is decided again on
// fresh state before the name is reported taken.
func (a *API) createWithClaim(c *fiber.Ctx, created, claim events.Change, claimType, claimKey string,
	current func() (claimState, bool, error), taken string) error {
	synced := false
	for attempt := 0; attempt < 3; attempt++ {
		st, ok, err := current()
		if err != nil {
			return err
		}
		held := ok && !st.released
		if held && synced {
			break
		}
		if !held {
			claim.Expect = events.ExpectNew
			if ok {
				claim.Expect = events.ExpectVersion(st.version)
			}
			if _, err := a.commit(c, created, claim); !isConflict(err) {
				return err
			}
		}
		if err := a.syncAggregate(c, claimType, claimKey); err != nil {
			return err
		}
		synced = true
	}
	return conflict(taken)
}

// ownClient finds a live client the caller may see: of its own account (or
// any, for admin with account_id) and of its key's environment. The path
// names the internal id or, URL-escaped, the client_id. Anything else is
// 404, so ids are not confirmed to strangers.
func (a *API) ownClient(c *fiber.Ctx) (projections.ClientRecord, error) {
	account, err := a.targetAccount(c)
	if err != nil {
		return projections.ClientRecord{}, err
	}
	env := principal(c).Environment
	visible := func(r projections.ClientRecord) bool {
		return r.AccountID == account && r.Environment == env && r.DeletedAt == nil
	}
	ctx, cancel := a.writeCtx(c)
	defer cancel()
	raw := c.Params("id")
	rec, ok, err := a.clientByID(ctx, raw)
	if err != nil {
		return rec, err
	}
	if ok && visible(rec) {
		return rec, nil
	}
	clientID, uerr := url.PathUnescape(raw)
	if uerr != nil {
		return projections.ClientRecord{}, notFound("client")
	}
	rec, ok, err = a.findClientByClientID(ctx, clientID, false)
	if err != nil {
		return rec, err
	}
	if !ok || !visible(rec) {
		return projections.ClientRecord{}, notFound("client")
	}
	return rec, nil
}

// clientByID looks a client up by internal id, asking the stream on a miss
// (it may have been created on another node a moment ago).
func (a *API) clientByID(ctx context.Context, id string) (projections.ClientRecord, bool, error) {
	if !strings.HasPrefix(id, domain.ClientIDPrefix) || !events.ValidID(id) {
		return projections.ClientRecord{}, false, nil
	}
	rec, ok, err := a.Clients.Get(id)
	if err != nil || ok {
		return rec, ok, err
	}
	exists, err := a.fresh(ctx, events.AggregateClient, id)
	if err != nil || !exists {
		return rec, false, err
	}
	return a.Clients.Get(id)
}

// clientByClientID finds the live client holding clientID, for the token
// endpoint. A client the projection lacks may have been created on another
// node a moment ago, so the stream is asked too; client_ids the stream does
// not know are remembered for a few seconds, so made-up ones cannot make
// every request a NATS round trip.
func (a *API) clientByClientID(ctx context.Context, clientID string) (projections.ClientRecord, bool, error) {
	return a.findClientByClientID(ctx, clientID, true)
}

func (a *API) findClientByClientID(ctx context.Context, clientID string, remember bool) (projections.ClientRecord, bool, error) {
	if !domain.ValidClientID(clientID) {
		return projections.ClientRecord{}, false, nil
	}
	rec, ok, err := a.Clients.ByClientID(clientID)
	if err != nil || ok {
		return rec, ok, err
	}
	key := events.ClientIDKey(clientID)
	unknownKey := "clientid/" + key // token ids never contain '/'
	if remember && a.unknown.has(unknownKey) {
		return rec, false, nil
	}
	if _, err := a.fresh(ctx, events.AggregateClientID, key); err != nil {
		return rec, false, err
	}
	rec, ok, err = a.Clients.ByClientID(clientID)
	if err == nil && !ok && remember {
		a.unknown.add(unknownKey)
	}
	return rec, ok, err
}

func (a *API) getClient(c *fiber.Ctx) error {
	rec, err := a.ownClient(c)
	if err != nil {
		return err
	}
	return c.JSON(viewClient(rec, a.now(c)))
}

func (a *API) listClients(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := a.Clients.ListByAccount(account, principal(c).Environment, c.Query("cursor"), limit)
	now := a.now(c)
	return sendPage(c, page, err, func(r projections.ClientRecord) clientView { return viewClient(r, now) })
}
