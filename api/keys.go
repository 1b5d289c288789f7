package api

import (
	"io"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// keyRequest is the body of POST /keys.
type keyRequest struct {
	Name        string     `json:"name"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	TTL         *int64     `json:"ttl"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// keyView is an API key as the API shows it; Token is set only on creation.
type keyView struct {
	ID          string     `json:"id"`
	Token       string     `json:"token,omitempty"`
	AccountID   string     `json:"account_id"`
	Name        string     `json:"name"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

func viewKey(r projections.TokenRecord, now time.Time) keyView {
	t := domain.Token{RevokedAt: r.RevokedAt, ExpiresAt: r.ExpiresAt}
	return keyView{ID: r.ID, AccountID: r.AccountID, Name: r.Name, Scopes: r.Scopes, Environment: r.Environment,
		Status: t.Status(now), CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt}
}

// newKeyChange generates a credential and the token.created change for it.
// secret, if not empty, is used verbatim (the operator's --root-key).
func newKeyChange(rnd io.Reader, meta events.Meta, cmd domain.IssueToken, secret string) (events.Change, string, error) {
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
		return events.Change{}, "", err
	}
	cmd.Hash = domain.HashSecret(secret)
	created, err := domain.NewToken(cmd, meta.Time)
	if err != nil {
		return events.Change{}, "", err
	}
	meta.AggregateType, meta.AggregateID, meta.AccountID, meta.Environment =
		events.AggregateToken, created.ID, cmd.AccountID, cmd.Environment
	ev, err := events.New(meta, created)
	if err != nil {
		return events.Change{}, "", err
	}
	return events.Change{Event: ev, Expect: events.ExpectNew}, secret, nil
}

func (a *API) createKey(c *fiber.Ctx) error {
	var req keyRequest
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
		return errForbidden // sandbox keys never reach production
	}
	cmd := domain.IssueToken{AccountID: account, Name: req.Name, Scopes: req.Scopes, Environment: req.Environment,
		ExpiresAt: req.ExpiresAt, GrantorScopes: p.Scopes}
	if req.TTL != nil {
		if *req.TTL <= 0 {
			return invalidRequest("ttl must be a positive number of seconds", domain.FieldProblem{Field: "ttl", Message: "must be > 0"})
		}
		cmd.TTL = time.Duration(*req.TTL) * time.Second
	}
	x := a.cmd(c)
	meta, err := x.meta(events.AggregateToken, "pending", account, req.Environment)
	if err != nil {
		return err
	}
	change, secret, err := newKeyChange(x.rand, meta, cmd, "")
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
	view := viewKey(rec, a.now(c))
	view.Token = secret
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderLocation, "/keys/"+view.ID)
	return c.Status(fiber.StatusCreated).JSON(view)
}

// ownKey finds a key the caller may see: its own account (or any, for admin
// with account_id) and environment. Anything else is 404.
func (a *API) ownKey(c *fiber.Ctx) (projections.TokenRecord, error) {
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
		return rec, notFound("key")
	}
	return rec, nil
}

// envVisible: sandbox keys see sandbox data only; live keys manage both
// environments of their account's keys.
func (a *API) envVisible(c *fiber.Ctx, env string) bool {
	p := principal(c)
	return p.Environment == domain.EnvLive || env == p.Environment
}

func (a *API) getKey(c *fiber.Ctx) error {
	rec, err := a.ownKey(c)
	if err != nil {
		return err
	}
	return c.JSON(viewKey(rec, a.now(c)))
}

func (a *API) listKeys(c *fiber.Ctx) error {
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
	now := a.now(c)
	status := c.Query("status")
	switch status {
	case "", domain.StatusActive, domain.StatusExpired, domain.StatusRevoked:
	default:
		return invalidRequest("status must be active, expired or revoked")
	}
	page, err := a.Tokens.ListByAccount(account, env, c.Query("cursor"), limit, func(r projections.TokenRecord) bool {
		return status == "" || viewKey(r, now).Status == status
	})
	if err == projections.ErrBadCursor {
		return invalidRequest("cursor is not valid")
	}
	if err != nil {
		return err
	}
	out := listResponse[keyView]{Data: make([]keyView, 0, len(page.Items))}
	for _, r := range page.Items {
		out.Data = append(out.Data, viewKey(r, now))
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return c.JSON(out)
}

func (a *API) revokeKey(c *fiber.Ctx) error {
	rec, err := a.ownKey(c)
	if err != nil {
		return err
	}
	if root, _ := a.Accounts.RootTokenID(); root == rec.ID {
		return conflict("the root key cannot be revoked")
	}
	tok := domain.Token{ID: rec.ID, AccountID: rec.AccountID, RevokedAt: rec.RevokedAt}
	revoked, err := tok.Revoke(c.Query("reason"), a.now(c))
	if err == domain.ErrConflict {
		return c.SendStatus(fiber.StatusNoContent) // already revoked: same outcome
	}
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
	if _, err := a.commit(c, events.Change{Event: ev, Expect: events.ExpectVersion(rec.Version)}); err != nil {
		if isConflict(err) {
			return c.SendStatus(fiber.StatusNoContent) // revoked concurrently
		}
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// listResponse is the cursor-paginated list shape of DESIGN.md.
type listResponse[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
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
