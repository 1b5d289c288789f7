package api

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// scopeRequest is the body of POST /scopes.
type scopeRequest struct {
	Name         string                   `json:"name"`
	Description  string                   `json:"description"`
	Domain       string                   `json:"domain"`
	Endpoints    []events.Endpoint        `json:"endpoints"`
	Requirements events.ScopeRequirements `json:"requirements"`
	Price        int64                    `json:"price"`
}

// scopePatch is the body of PATCH /scopes/:name; absent fields keep their
// value. requirements.paid follows a new price unless it is given too.
type scopePatch struct {
	Name         *string            `json:"name"`
	Description  *string            `json:"description"`
	Domain       *string            `json:"domain"`
	Endpoints    *[]events.Endpoint `json:"endpoints"`
	Requirements *requirementsPatch `json:"requirements"`
	Price        *int64             `json:"price"`
}

type requirementsPatch struct {
	Scopes *[]string `json:"scopes"`
	Paid   *bool     `json:"paid"`
}

// merge applies the patch onto spec.
func (p scopePatch) merge(spec domain.ScopeSpec) domain.ScopeSpec {
	if p.Name != nil {
		spec.Name = *p.Name
	}
	if p.Description != nil {
		spec.Description = *p.Description
	}
	if p.Domain != nil {
		spec.Domain = *p.Domain
	}
	if p.Endpoints != nil {
		spec.Endpoints = *p.Endpoints
	}
	if p.Price != nil {
		spec.Price = *p.Price
		spec.Requirements.Paid = spec.Price > 0
	}
	if r := p.Requirements; r != nil {
		if r.Scopes != nil {
			spec.Requirements.Scopes = *r.Scopes
		}
		if r.Paid != nil {
			spec.Requirements.Paid = *r.Paid
		}
	}
	return spec
}

// scopeView is a catalog entry as the API shows it.
type scopeView struct {
	Name         string                   `json:"name"`
	Description  string                   `json:"description"`
	Domain       string                   `json:"domain"`
	Endpoints    []events.Endpoint        `json:"endpoints"`
	Requirements events.ScopeRequirements `json:"requirements"`
	Price        int64                    `json:"price"`
	DefinedAt    time.Time                `json:"defined_at"`
	UpdatedAt    time.Time                `json:"updated_at"`
}

func viewScope(r projections.ScopeRecord) scopeView {
	return scopeView{Name: r.Name, Description: r.Description, Domain: r.Domain, Endpoints: r.Endpoints,
		Requirements: r.Requirements, Price: r.Price, DefinedAt: r.DefinedAt, UpdatedAt: r.UpdatedAt}
}

func scopeOf(r projections.ScopeRecord) domain.Scope {
	return domain.Scope{Name: r.Name, Description: r.Description, Domain: r.Domain, Endpoints: r.Endpoints,
		Requirements: r.Requirements, Price: r.Price, DefinedAt: r.DefinedAt, UpdatedAt: r.UpdatedAt, Version: r.Version}
}

func (a *API) listScopes(c *fiber.Ctx) error {
	dom := c.Query("domain")
	if dom != "" && !domain.ValidScopeDomain(dom) {
		return invalidRequest("domain must be 1 to 40 lower-case letters, digits, '_' or '-'")
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := a.Scopes.List(dom, c.Query("cursor"), limit)
	return sendPage(c, page, err, func(r projections.ScopeRecord) scopeView { return viewScope(r) })
}

func (a *API) getScope(c *fiber.Ctx) error {
	rec, err := a.requestedScope(c)
	if err != nil {
		return err
	}
	return c.JSON(viewScope(rec))
}

// requestedScope is the scope named in the path (":" may come escaped).
func (a *API) requestedScope(c *fiber.Ctx) (projections.ScopeRecord, error) {
	name, err := url.PathUnescape(c.Params("name"))
	if err != nil {
		return projections.ScopeRecord{}, notFound("scope")
	}
	ctx, cancel := a.writeCtx(c)
	defer cancel()
	rec, ok, err := a.findScope(ctx, name)
	if err != nil {
		return rec, err
	}
	if !ok {
		return rec, notFound("scope")
	}
	return rec, nil
}

// findScope looks a scope up. One the projection lacks may have been
// defined on another node a moment ago, so the stream is asked too; names
// the stream does not know are remembered for a few seconds, so requests
// naming made-up scopes cannot make each call a NATS round trip.
func (a *API) findScope(ctx context.Context, name string) (projections.ScopeRecord, bool, error) {
	rec, ok, err := a.Scopes.Get(name)
	if err != nil || ok {
		return rec, ok, err
	}
	unknownKey := "scope/" + name // token ids never contain '/'
	if a.unknown.has(unknownKey) {
		return rec, false, nil
	}
	exists, err := a.fresh(ctx, events.AggregateScope, name)
	if err != nil {
		return rec, false, err
	}
	if !exists {
		a.unknown.add(unknownKey)
		return rec, false, nil
	}
	return a.Scopes.Get(name)
}

// lookupScopes returns the catalog entries of names, in order. Names the
// catalog lacks are an invalid request that lists each of them.
func (a *API) lookupScopes(names []string) ([]projections.ScopeRecord, error) {
	out := make([]projections.ScopeRecord, 0, len(names))
	var unknown []string
	var details []domain.FieldProblem
	var ctx context.Context // made on the first miss: hits stay allocation-light
	for _, name := range names {
		rec, ok, err := a.Scopes.Get(name)
		if err == nil && !ok {
			if ctx == nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), a.cfg.WriteTimeout)
				defer cancel()
			}
			rec, ok, err = a.findScope(ctx, name)
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			unknown = append(unknown, fmt.Sprintf("%q", name))
			details = append(details, domain.FieldProblem{Field: "scopes", Message: fmt.Sprintf("%q is not in the scope catalog", name)})
			continue
		}
		out = append(out, rec)
	}
	if len(unknown) > 0 {
		return nil, invalidRequest("unknown scopes: "+strings.Join(unknown, ", ")+" (see GET /scopes)", details...)
	}
	return out, nil
}

// defineScope adds a scope to the catalog (admin only).
func (a *API) defineScope(c *fiber.Ctx) error {
	p := principal(c)
	if !p.Admin() {
		return errForbidden
	}
	var req scopeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	x := a.cmd(c)
	defined, err := domain.DefineScope(domain.ScopeSpec{
		Name: req.Name, Description: req.Description, Domain: req.Domain,
		Endpoints: req.Endpoints, Requirements: req.Requirements, Price: req.Price,
	}, x.now)
	if err != nil {
		return err
	}
	meta, err := x.meta(events.AggregateScope, defined.Name, p.AccountID, "")
	if err != nil {
		return err
	}
	ev, err := events.New(meta, defined)
	if err != nil {
		return err
	}
	if _, err := a.commit(c, events.Change{Event: ev, Expect: events.ExpectNew}); err != nil {
		if isConflict(err) {
			return conflict(fmt.Sprintf("scope %q already exists; change it with PATCH /scopes/%s", defined.Name, defined.Name))
		}
		return err
	}
	rec, ok, err := a.Scopes.Get(defined.Name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("scope %s applied but missing from the projection", defined.Name)
	}
	c.Set(fiber.HeaderLocation, "/scopes/"+rec.Name)
	return c.Status(fiber.StatusCreated).JSON(viewScope(rec))
}

// updateScope changes a scope (admin only). A write that loses a race with
// another change is retried once on the fresh state.
func (a *API) updateScope(c *fiber.Ctx) error {
	p := principal(c)
	if !p.Admin() {
		return errForbidden
	}
	var req scopePatch
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		rec, err := a.requestedScope(c)
		if err != nil {
			return err
		}
		current := scopeOf(rec)
		x := a.cmd(c)
		updated, err := current.Update(req.merge(current.Spec()), x.now)
		if err != nil {
			return err
		}
		if sameScope(updated, rec) {
			return c.JSON(viewScope(rec)) // nothing to change: no event
		}
		meta, err := x.meta(events.AggregateScope, rec.Name, p.AccountID, "")
		if err != nil {
			return err
		}
		ev, err := events.New(meta, updated)
		if err != nil {
			return err
		}
		retry, err := a.commitOrRetry(c, attempt, fmt.Sprintf("scope %q is being changed concurrently; retry", rec.Name), events.Change{Event: ev, Expect: events.ExpectVersion(rec.Version)})
		if retry {
			continue
		}
		if err != nil {
			return err
		}
		rec, _, err = a.Scopes.Get(rec.Name)
		if err != nil {
			return err
		}
		return c.JSON(viewScope(rec))
	}
}

func sameScope(u events.ScopeUpdated, r projections.ScopeRecord) bool {
	return u.Description == r.Description && u.Domain == r.Domain && u.Price == r.Price &&
		slices.Equal(u.Endpoints, r.Endpoints) && slices.Equal(u.Requirements.Scopes, r.Requirements.Scopes) &&
		u.Requirements.Paid == r.Requirements.Paid
}

// EnsureDefaultScopes defines every scope of [domain.DefaultCatalog] the
// catalog lacks, and returns once this node's projection has them. Scopes
// an operator changed are left as they are. Nodes starting together are
// safe: each scope is appended with an empty-history expectation.
func (a *API) EnsureDefaultScopes(ctx context.Context) error {
	x := cmdCtx{rand: a.Rand, now: a.Now(), actor: "system", correlation: "catalog"}
	var changes []events.Change
	for _, spec := range domain.DefaultCatalog() {
		_, ok, err := a.Scopes.Get(spec.Name)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		defined, err := domain.DefineScope(spec, x.now)
		if err != nil {
			return fmt.Errorf("default scope %s: %w", spec.Name, err)
		}
		meta, err := x.meta(events.AggregateScope, defined.Name, "", "")
		if err != nil {
			return err
		}
		ev, err := events.New(meta, defined)
		if err != nil {
			return err
		}
		changes = append(changes, events.Change{Event: ev, Expect: events.ExpectNew})
	}
	if len(changes) == 0 {
		return nil
	}
	// One atomic append on a new event log; when some scopes exist already
	// (another node, or a projection still catching up), one at a time.
	res, err := a.Store.Append(ctx, changes...)
	if err == nil {
		return a.Projector.WaitFor(ctx, res.Last())
	}
	if !isConflict(err) {
		return fmt.Errorf("define default scopes: %w", err)
	}
	var last uint64
	for _, ch := range changes {
		res, err := a.Store.Append(ctx, ch)
		if isConflict(err) {
			seq, lerr := a.Store.LastSequence(ctx, events.AggregateScope, ch.Event.AggregateID)
			if lerr != nil {
				return lerr
			}
			last = max(last, seq)
			continue
		}
		if err != nil {
			return fmt.Errorf("define default scope %s: %w", ch.Event.AggregateID, err)
		}
		last = max(last, res.Last())
	}
	return a.Projector.WaitFor(ctx, last)
}
