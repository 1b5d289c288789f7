package api

import (
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// tokenRequest is the body of POST /tokens (and POST /keys).
type tokenRequest struct {
	Name        string              `json:"name"`
	Scopes      []string            `json:"scopes"`
	Environment string              `json:"environment"`
	TTL         *int64              `json:"ttl"`
	ExpiresAt   *time.Time          `json:"expires_at"`
	Limits      *events.TokenLimits `json:"limits"`
	RateLimit   *events.RateLimit   `json:"rate_limit"`
}

// tokenView is a token as the API shows it. Token and RefreshToken are set
// only when they were just issued.
type tokenView struct {
	ID           string             `json:"id"`
	Token        string             `json:"token,omitempty"`
	RefreshToken string             `json:"refresh_token,omitempty"`
	AccountID    string             `json:"account_id"`
	Name         string             `json:"name"`
	Scopes       []string           `json:"scopes"`
	Environment  string             `json:"environment"`
	Status       string             `json:"status"`
	Limits       events.TokenLimits `json:"limits"`
	RateLimit    events.RateLimit   `json:"rate_limit"`
	Remaining    remaining          `json:"remaining"`
	CreatedAt    time.Time          `json:"created_at"`
	ExpiresAt    *time.Time         `json:"expires_at"`
	RevokedAt    *time.Time         `json:"revoked_at,omitempty"`
	LastUsedAt   *time.Time         `json:"last_used_at"`
}

func (a *API) viewToken(r projections.TokenRecord, now time.Time) tokenView {
	t := tokenOf(r)
	var own events.Quota
	lastUsed := r.LastUsedAt
	if at, ok, err := a.Stats.LastUsed(r.ID); err == nil && ok && (lastUsed == nil || at.After(*lastUsed)) {
		lastUsed = &at
	}
	if l := a.quota.peek(r.ID); l != nil {
		own = l.left
		if !l.lastUsed.IsZero() && (lastUsed == nil || l.lastUsed.After(*lastUsed)) {
			lu := l.lastUsed.UTC()
			lastUsed = &lu
		}
	}
	limits := r.Limits
	if limits.IPWhitelist == nil {
		limits.IPWhitelist = []string{}
	}
	return tokenView{ID: r.ID, AccountID: r.AccountID, Name: r.Name, Scopes: r.Scopes, Environment: r.Environment,
		Status: t.Status(now), Limits: limits, RateLimit: r.RateLimit, Remaining: remainingOf(t, own),
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, LastUsedAt: lastUsed}
}

// newTokenChange generates a token (and a refresh token when withRefresh)
// and the token.created change for it. secret, if not empty, is used
// verbatim (the operator's --root-key).
func newTokenChange(rnd io.Reader, meta events.Meta, cmd domain.IssueToken, secret string, withRefresh bool) (events.Change, string, string, error) {
	prefix := domain.PrefixLive
	if cmd.Environment == domain.EnvTest {
		prefix = domain.PrefixTest
	}
	var err error
	if secret == "" {
		secret, cmd.Credential, err = domain.NewCredential(rnd, prefix)
	} else if cred, perr := domain.ParseCredential(secret); perr == nil {
		cmd.Credential = cred
	} else {
		// A verbatim key without the tg_ form gets a generated selector.
		_, cmd.Credential, err = domain.NewCredential(rnd, prefix)
	}
	if err != nil {
		return events.Change{}, "", "", err
	}
	var refresh string
	if withRefresh {
		if refresh, err = domain.NewCredentialFor(rnd, domain.PrefixRefreshToken, cmd.Credential.Selector); err != nil {
			return events.Change{}, "", "", err
		}
		cmd.RefreshHash = domain.HashSecret(refresh)
	}
	cmd.Hash = domain.HashSecret(secret)
	created, err := domain.NewToken(cmd, meta.Time)
	if err != nil {
		return events.Change{}, "", "", err
	}
	meta.AggregateType, meta.AggregateID, meta.AccountID, meta.Environment =
		events.AggregateToken, created.ID, cmd.AccountID, cmd.Environment
	ev, err := events.New(meta, created)
	if err != nil {
		return events.Change{}, "", "", err
	}
	return events.Change{Event: ev, Expect: events.ExpectNew}, secret, refresh, nil
}

func (a *API) createToken(c *fiber.Ctx) error {
	var req tokenRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p := principal(c)
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	if req.Environment == "" {
		req.Environment = p.Environment
	}
	if p.Environment == domain.EnvTest && req.Environment != domain.EnvTest {
		return errForbidden // sandbox tokens never reach production
	}
	if err := a.checkTokenScopes(req.Scopes); err != nil {
		return err
	}
	cmd := domain.IssueToken{AccountID: account, Name: req.Name, Scopes: req.Scopes, Environment: req.Environment,
		ExpiresAt: req.ExpiresAt, Limits: req.Limits, RateLimit: req.RateLimit, GrantorScopes: p.Scopes}
	if req.TTL != nil {
		if *req.TTL <= 0 || *req.TTL > maxTTLSeconds {
			return invalidRequest("ttl must be from 1 second to 10 years", domain.FieldProblem{Field: "ttl", Message: "must be from 1 to 315360000 seconds"})
		}
		cmd.TTL = time.Duration(*req.TTL) * time.Second
	}
	x := a.cmd(c)
	meta, err := x.meta(events.AggregateToken, "pending", account, req.Environment)
	if err != nil {
		return err
	}
	change, secret, refresh, err := newTokenChange(x.rand, meta, cmd, "", true)
	if err != nil {
		return err
	}
	if _, err := a.commit(c, change); err != nil {
		return err
	}
	rec, _, err := a.Tokens.Get(change.Event.AggregateID)
	if err != nil {
		return err
	}
	view := a.viewToken(rec, a.now(c))
	view.Token, view.RefreshToken = secret, refresh
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderLocation, strings.TrimSuffix(c.Path(), "/")+"/"+view.ID)
	return c.Status(fiber.StatusCreated).JSON(view)
}

// ownToken finds a token the caller may see: its own account (or any, for
// admin with account_id) and a visible environment. Anything else is 404,
// so ids are not confirmed to strangers.
func (a *API) ownToken(c *fiber.Ctx) (projections.TokenRecord, error) {
	account, err := a.targetAccount(c)
	if err != nil {
		return projections.TokenRecord{}, err
	}
	id := c.Params("id")
	rec, ok, err := a.Tokens.Get(id)
	if err == nil && !ok {
		ctx, cancel := a.writeCtx(c)
		exists, ferr := a.fresh(ctx, events.AggregateToken, id)
		cancel()
		if ferr == nil && exists {
			rec, ok, err = a.Tokens.Get(id)
		}
	}
	if err != nil {
		return rec, err
	}
	if !ok || rec.AccountID != account || !a.envVisible(c, rec.Environment) {
		return rec, notFound("token")
	}
	return rec, nil
}

// envVisible: sandbox keys see sandbox tokens only; live keys manage the
// tokens of both environments of their account (and only live keys can
// create sandbox tokens for it).
func (a *API) envVisible(c *fiber.Ctx, env string) bool {
	p := principal(c)
	return p.Environment == domain.EnvLive || env == p.Environment
}

func (a *API) getToken(c *fiber.Ctx) error {
	rec, err := a.ownToken(c)
	if err != nil {
		return err
	}
	return c.JSON(a.viewToken(rec, a.now(c)))
}

func (a *API) listTokens(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	env := c.Query("environment", principal(c).Environment)
	if env != domain.EnvLive && env != domain.EnvTest {
		return invalidRequest("environment must be live or test")
	}
	if !a.envVisible(c, env) {
		return errForbidden
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	status := c.Query("status")
	switch status {
	case "", domain.StatusActive, domain.StatusExpired, domain.StatusRevoked:
	default:
		return invalidRequest("status must be active, expired or revoked")
	}
	namePrefix := c.Query("name")
	now := a.now(c)
	page, err := a.Tokens.ListByAccount(account, env, c.Query("cursor"), limit, func(r projections.TokenRecord) bool {
		return (status == "" || tokenOf(r).Status(now) == status) && strings.HasPrefix(r.Name, namePrefix)
	})
	return sendPage(c, page, err, func(r projections.TokenRecord) tokenView { return a.viewToken(r, now) })
}

func (a *API) revokeToken(c *fiber.Ctx) error {
	rec, err := a.ownToken(c)
	if err != nil {
		return err
	}
	if root, _ := a.Accounts.RootTokenID(); root == rec.ID {
		return conflict("the root key cannot be revoked")
	}
	if err := a.revoke(c, rec, c.Query("reason")); err != nil && !errors.Is(err, domain.ErrConflict) {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// revoke appends token.revoked; revoking a revoked token is ErrConflict.
func (a *API) revoke(c *fiber.Ctx, rec projections.TokenRecord, reason string) error {
	tok := tokenOf(rec)
	revoked, err := tok.Revoke(reason, a.now(c))
	if err != nil {
		return err
	}
	meta, err := a.cmd(c).meta(events.AggregateToken, rec.ID, rec.AccountID, rec.Environment)
	if err != nil {
		return err
	}
	ev, err := events.New(meta, revoked)
	if err != nil {
		return err
	}
	_, err = a.commit(c, events.Change{Event: ev, Expect: events.ExpectVersion(rec.Version)})
	if errors.Is(err, events.ErrConflict) {
		// Changed concurrently: revoke whatever it is now.
		if fresh, ok, gerr := a.Tokens.Get(rec.ID); gerr == nil && ok && fresh.Version != rec.Version {
			return a.revoke(c, fresh, reason)
		}
	}
	return err
}

// listResponse is the cursor-paginated list shape of DESIGN.md.
type listResponse[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// sendPage answers a listing: each record through view, and the cursor of
// the next page (null on the last).
func sendPage[R, V any](c *fiber.Ctx, page projections.Page[R], err error, view func(R) V) error {
	if errors.Is(err, projections.ErrBadCursor) {
		return invalidRequest("cursor is not valid")
	}
	if err != nil {
		return err
	}
	out := listResponse[V]{Data: make([]V, 0, len(page.Items))}
	for _, r := range page.Items {
		out.Data = append(out.Data, view(r))
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return c.JSON(out)
}

func pageLimit(c *fiber.Ctx) (int, error) {
	raw := c.Query("limit")
	if raw == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > 500 {
		return 0, invalidRequest("limit must be an integer from 1 to 500")
	}
	return n, nil
}

// checkTokenScopes: every scope of a token must be in the catalog, with the
// scopes it requires alongside it.
func (a *API) checkTokenScopes(scopes []string) error {
	recs, err := a.lookupScopes(scopes)
	if err != nil {
		return err
	}
	var problems []domain.FieldProblem
	for _, r := range recs {
		for _, req := range r.Requirements.Scopes {
			if !slices.Contains(scopes, req) && !slices.Contains(scopes, domain.ScopeAdmin) {
				problems = append(problems, domain.FieldProblem{Field: "scopes", Message: r.Name + " requires " + req})
			}
		}
	}
	if len(problems) > 0 {
		return invalidRequest(problems[0].Message, problems...)
	}
	return nil
}

// maxTTLSeconds bounds ttl before it becomes a time.Duration (which would
// overflow for absurd values): ten years.
const maxTTLSeconds = 10 * 365 * 24 * 3600
