package api

import (
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// verifyRequest is the body of POST /verify.
type verifyRequest struct {
	Token    string   `json:"token"`
	Scopes   []string `json:"scopes"`
	Cost     *int64   `json:"cost"`
	IP       string   `json:"ip"`
	Domain   string   `json:"domain"`
	Endpoint string   `json:"endpoint"`
}

// verifyResponse always comes with 200: the verdict is in code.
type verifyResponse struct {
	Valid       bool       `json:"valid"`
	Code        string     `json:"code"`
	TokenID     *string    `json:"token_id"`
	AccountID   *string    `json:"account_id"`
	Environment *string    `json:"environment"`
	Scopes      []string   `json:"scopes"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Remaining   remaining  `json:"remaining"`
	RateLimit   *rateState `json:"ratelimit"`
}

// More verdicts, in the order they are checked after the credential's own.
const (
	verdictForbiddenIP       = "FORBIDDEN_IP"
	verdictInsufficientScope = "INSUFFICIENT_SCOPE"
	verdictRateLimited       = "RATE_LIMITED"
)

// verify is for downstream services: is this token good for this call?
// Checks run in the documented order and only a VALID verdict consumes
// quota or credit.
func (a *API) verify(c *fiber.Ctx) error {
	var req verifyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []domain.FieldProblem
	if req.Token == "" || len(req.Token) > 512 {
		problems = append(problems, domain.FieldProblem{Field: "token", Message: "is required"})
	}
	for _, s := range req.Scopes {
		if !domain.ValidScopeName(s) {
			problems = append(problems, domain.FieldProblem{Field: "scopes", Message: "invalid scope name " + s})
		}
	}
	if req.Cost != nil && (*req.Cost < 0 || *req.Cost > 1_000_000_000) {
		problems = append(problems, domain.FieldProblem{Field: "cost", Message: "must be from 0 to 1000000000"})
	}
	var ip netip.Addr
	if req.IP != "" {
		var err error
		if ip, err = netip.ParseAddr(req.IP); err != nil {
			problems = append(problems, domain.FieldProblem{Field: "ip", Message: "is not an IP address"})
		} else if ip.Is6() {
			// Usage names an address one way however it was written:
			// ::ffff:192.0.2.1 is 192.0.2.1, 2001:DB8::1 is 2001:db8::1.
			// (ParseAddr takes IPv4 only in its one dotted form.)
			req.IP = ip.Unmap().String()
		}
	}
	if len(req.Domain) > 253 || len(req.Endpoint) > 2048 {
		problems = append(problems, domain.FieldProblem{Field: "domain", Message: "domain or endpoint too long"})
	}
	if len(problems) > 0 {
		return invalidRequest(problems[0].Field+": "+problems[0].Message, problems...)
	}

	now := a.now(c)
	caller := principal(c)
	out := verifyResponse{Scopes: []string{}}
	start := time.Now()
	var cost int64
	defer func() {
		// Every verdict is usage of the caller's account; a VALID paid call
		// records what it spent.
		rec := events.UsageRecord{Kind: events.UsageKindVerify, Time: now.UTC(), AccountID: caller.AccountID,
			Environment: caller.Environment, Domain: req.Domain, Endpoint: req.Endpoint, IP: req.IP,
			Status: fiber.StatusOK, Verdict: out.Code, LatencyUS: time.Since(start).Microseconds()}
		if out.TokenID != nil {
			// Usage belongs to the token's account (an admin may verify
			// tokens of any account).
			rec.TokenID, rec.AccountID, rec.Environment = *out.TokenID, *out.AccountID, *out.Environment
		}
		if out.Valid {
			rec.Cost = cost
		}
		if a.Usage != nil && out.Code != "" {
			a.Usage.Record(rec)
		}
	}()
	rec, code := a.checkCredential(c, req.Token, now)
	if code != verdictNotFound && *rec.AccountID() != caller.AccountID && !caller.Admin() {
		// Another account's token does not exist for this caller.
		code = verdictNotFound
	}
	if code == verdictNotFound {
		out.Code = code
		return c.JSON(out)
	}
	id := rec.ID()
	out.TokenID, out.AccountID, out.Environment = &id, rec.AccountID(), rec.Environment()
	out.Scopes = rec.Scopes()
	if rec.ExpiresAt != 0 {
		at := time.Unix(0, rec.ExpiresAt).UTC()
		out.ExpiresAt = &at
	}
	// Only a token with usage limits needs its full record (quota leases).
	var full *projections.TokenRecord
	if rec.Limited() {
		var ok bool
		var err error
		if full, ok, err = a.Tokens.Lookup(id); err != nil {
			return err
		} else if !ok {
			out = verifyResponse{Code: verdictNotFound, Scopes: []string{}}
			return c.JSON(out)
		}
		out.Remaining = remainingOf(tokenOf(*full), a.quota.leftOf(id))
	}
	switch {
	case code != "":
	case !rec.AllowsIP(ip):
		code = verdictForbiddenIP
	case !holdsAll(rec.Scopes(), req.Scopes):
		code = verdictInsufficientScope
	}
	if code != "" {
		out.Code = code
		return c.JSON(out)
	}
	allowed, st := a.rates.allow(id, int64(rec.RateLimit), int64(rec.RateWindow), now)
	out.RateLimit = &st
	if !allowed {
		out.Code = verdictRateLimited
		return c.JSON(out)
	}
	if req.Cost != nil {
		cost = *req.Cost
	} else {
		scopes, err := a.lookupScopes(req.Scopes)
		if err != nil {
			return err
		}
		for _, s := range scopes {
			cost += s.Price
		}
	}
	var verdict string
	var left remaining
	var err error
	if full != nil {
		verdict, left, err = a.quota.spend(c.UserContext(), *full, cost > 0, cost, now)
	} else {
		verdict, left, err = a.quota.spendUnlimited(c.UserContext(), rec, cost, now)
	}
	if err != nil {
		return err
	}
	out.Code, out.Valid, out.Remaining = verdict, verdict == verdictValid, left
	return c.JSON(out)
}

func holdsAll(held, required []string) bool {
	for _, r := range required {
		if !domain.HasScope(held, r) {
			return false
		}
	}
	return true
}
