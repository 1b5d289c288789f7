package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// quotaManager spends tokens' limited quota (total requests, paid requests,
// credits) on this node. It leases blocks of quota through events appended
// with an expectation on the token's version, so nodes together never hand
// out more than a limit allows, and spends a lease in memory: no network
// round trip per request once a lease is held.
type quotaManager struct {
	a       *API
	node    string
	ttl     time.Duration
	leases  sync.Map // token id → *tokenLease
	wallets sync.Map // wallet id → *walletLease
}

type tokenLease struct {
	mu       sync.Mutex
	id       string
	left     events.Quota
	used     events.Quota
	lastUsed time.Time
}

func newQuotaManager(a *API, node string) *quotaManager {
	return &quotaManager{a: a, node: node, ttl: 5 * time.Minute}
}

func (m *quotaManager) lease(tokenID string) *tokenLease {
	if l, ok := m.leases.Load(tokenID); ok {
		return l.(*tokenLease)
	}
	l, _ := m.leases.LoadOrStore(tokenID, &tokenLease{})
	return l.(*tokenLease)
}

// Verdicts of spending.
const (
	verdictValid             = "VALID"
	verdictUsageExceeded     = "USAGE_EXCEEDED"
	verdictInsufficientFunds = "INSUFFICIENT_FUNDS"
)

// demand is what one request takes from each capped dimension.
func demand(t domain.Token, paid bool, cost int64) events.Quota {
	var q events.Quota
	if t.Limits.TotalRequests != nil {
		q.Requests = 1
	}
	if paid && t.Limits.PaidRequests != nil {
		q.PaidRequests = 1
	}
	if cost > 0 && t.Limits.WalletAmount != nil {
		q.Credits = cost
	}
	return q
}

// spend takes one request (paid or not, costing cost credits) from the
// token's quota. It answers the verdict and what remains of each limit
// (nil entries: unlimited). ctx bounds a lease acquisition, the only part
// that may need the network.
// spendUnlimited is spend for a token without usage limits: only its
// account's wallet may stand in the way.
func (m *quotaManager) spendUnlimited(ctx context.Context, t *projections.TokenAuth, cost int64, now time.Time) (string, remaining, error) {
	if cost > 0 {
		ok, err := m.spendWallet(ctx, domain.Token{ID: t.ID(), AccountID: *t.AccountID(), Environment: *t.Environment()}, cost, now)
		if err != nil || !ok {
			return verdictInsufficientFunds, remaining{}, err
		}
	}
	return verdictValid, remaining{}, nil
}

func (m *quotaManager) spend(ctx context.Context, rec projections.TokenRecord, paid bool, cost int64, now time.Time) (string, remaining, error) {
	tok := tokenOf(rec)
	if !tok.Limited() {
		if cost > 0 {
			ok, err := m.spendWallet(ctx, tok, cost, now)
			if err != nil || !ok {
				return verdictInsufficientFunds, remainingOf(tok, events.Quota{}), err
			}
		}
		return verdictValid, remainingOf(tok, events.Quota{}), nil
	}
	want := demand(tok, paid, cost)
	l := m.lease(tok.ID)
	l.mu.Lock()
	defer l.mu.Unlock()
	// Another request may have changed the token while this one waited.
	if fresh, ok, err := m.a.Tokens.Get(tok.ID); err == nil && ok {
		tok = tokenOf(fresh)
	}
	for attempt := 0; ; attempt++ {
		short := events.Quota{
			Requests:     max(0, want.Requests-l.left.Requests),
			PaidRequests: max(0, want.PaidRequests-l.left.PaidRequests),
			Credits:      max(0, want.Credits-l.left.Credits),
		}
		if short == (events.Quota{}) {
			// The token can afford it; the account's wallet must too.
			if cost > 0 {
				ok, err := m.spendWallet(ctx, tok, cost, now)
				if err != nil || !ok {
					return verdictInsufficientFunds, remainingOf(tok, l.left), err
				}
			}
			l.left.Requests -= want.Requests
			l.left.PaidRequests -= want.PaidRequests
			l.left.Credits -= want.Credits
			l.used.Requests += want.Requests
			l.used.PaidRequests += want.PaidRequests
			l.used.Credits += want.Credits
			l.lastUsed = now
			return verdictValid, remainingOf(tok, l.left), nil
		}
		avail := tok.Available()
		switch {
		case avail.Requests >= 0 && avail.Requests < short.Requests,
			avail.PaidRequests >= 0 && avail.PaidRequests < short.PaidRequests:
			return verdictUsageExceeded, remainingOf(tok, l.left), nil
		case avail.Credits >= 0 && avail.Credits < short.Credits:
			return verdictInsufficientFunds, remainingOf(tok, l.left), nil
		}
		if attempt >= maxLeaseAttempts {
			return "", remaining{}, errors.New("quota lease: too much contention")
		}
		if attempt > 0 {
			backoffJitter(attempt)
		}
		actx, cancel := context.WithTimeout(ctx, m.a.cfg.WriteTimeout)
		fresh, err := m.acquire(actx, l, tok, short, now)
		cancel()
		if err != nil {
			return "", remaining{}, err
		}
		tok = fresh
	}
}

// acquire leases at least short (more when the limit is large, so later
// requests need no round trip) and returns the token's latest state.
func (m *quotaManager) acquire(ctx context.Context, l *tokenLease, tok domain.Token, short events.Quota, now time.Time) (domain.Token, error) {
	chunk := func(limit *int64, short int64) int64 {
		if short == 0 || limit == nil {
			return 0
		}
		return max(short, min(*limit/10, 1000))
	}
	want := events.Quota{
		Requests:     chunk(tok.Limits.TotalRequests, short.Requests),
		PaidRequests: chunk(tok.Limits.PaidRequests, short.PaidRequests),
		Credits:      max(short.Credits, min(chunk(tok.Limits.WalletAmount, short.Credits), 100*short.Credits)),
	}
	if l.id == "" {
		id, err := domain.NewID(m.a.Rand, "lse_", 20)
		if err != nil {
			return tok, err
		}
		l.id = id
	}
	leased, err := tok.Lease(l.id, m.node, want, now, m.ttl)
	if err == nil {
		x := cmdCtx{rand: m.a.Rand, now: now, actor: "node:" + m.node}
		var meta events.Meta
		if meta, err = x.meta(events.AggregateToken, tok.ID, tok.AccountID, tok.Environment); err != nil {
			return tok, err
		}
		ev, err := events.New(meta, leased)
		if err != nil {
			return tok, err
		}
		res, err := m.a.Store.Append(ctx, events.Change{Event: ev, Expect: events.ExpectVersion(tok.Version)})
		switch {
		case err == nil:
			l.left.Requests += leased.Granted.Requests
			l.left.PaidRequests += leased.Granted.PaidRequests
			l.left.Credits += leased.Granted.Credits
			if err := m.a.Projector.WaitFor(ctx, res.Last()); err != nil {
				return tok, err
			}
		case errors.Is(err, events.ErrConflict):
			// Someone else changed the token: catch up and decide again.
			seq, lerr := m.a.Store.LastSequence(ctx, events.AggregateToken, tok.ID)
			if lerr != nil {
				return tok, lerr
			}
			if err := m.a.Projector.WaitFor(ctx, seq); err != nil {
				return tok, err
			}
		default:
			return tok, err
		}
	} else if !errors.Is(err, domain.ErrQuotaExhausted) {
		return tok, err
	}
	rec, ok, err := m.a.Tokens.Get(tok.ID)
	if err != nil || !ok {
		return tok, errors.Join(err, domain.ErrNotFound)
	}
	return tokenOf(rec), nil
}

// returnLeases settles what every lease spent since its last settlement
// and closes the leases idle for at least idle (all of them with idle 0):
// what was used is spent for good, the rest is free again.
func (m *quotaManager) returnLeases(ctx context.Context, idle time.Duration) error {
	var ids []string
	m.leases.Range(func(id, _ any) bool {
		ids = append(ids, id.(string))
		return true
	})
	var errs []error
	now := m.a.Now()
	for _, tokenID := range ids {
		l := m.lease(tokenID)
		l.mu.Lock()
		closing := now.Sub(l.lastUsed) >= idle
		if l.id != "" && (closing || l.used != (events.Quota{})) {
			if err := m.giveBack(ctx, tokenID, l, !closing, now); err != nil {
				errs = append(errs, err)
			}
		}
		l.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (m *quotaManager) giveBack(ctx context.Context, tokenID string, l *tokenLease, partial bool, now time.Time) error {
	rec, ok, err := m.a.Tokens.Get(tokenID)
	if err != nil || !ok {
		return err
	}
	ret := events.QuotaReturned{ID: tokenID, LeaseID: l.id, Used: l.used, Partial: partial, ReturnedAt: now.UTC()}
	if partial {
		renew := now.Add(m.ttl).UTC()
		ret.RenewUntil = &renew
	}
	if !l.lastUsed.IsZero() {
		lu := l.lastUsed.UTC()
		ret.LastUsedAt = &lu
	}
	if err := m.a.appendToken(ctx, rec, ret, "node:"+m.node); err != nil {
		return err
	}
	l.used = events.Quota{}
	if !partial {
		l.id, l.left, l.lastUsed = "", events.Quota{}, time.Time{}
	}
	return nil
}

// appendToken appends one event to a token without a version check.
func (a *API) appendToken(ctx context.Context, rec projections.TokenRecord, p events.Payload, actor string) error {
	x := cmdCtx{rand: a.Rand, now: a.Now(), actor: actor}
	meta, err := x.meta(events.AggregateToken, rec.ID, rec.AccountID, rec.Environment)
	if err != nil {
		return err
	}
	ev, err := events.New(meta, p)
	if err != nil {
		return err
	}
	_, err = a.Store.Append(ctx, events.Change{Event: ev})
	return err
}

// ReleaseOwnTokenLeases gives back the quota leases a previous run of this
// node held (after a crash). What they used since their last settlement
// (at most a second of traffic) is given back with them.
func (a *API) ReleaseOwnTokenLeases(ctx context.Context) error {
	recs, err := a.Tokens.WithLeasesOf(a.cfg.NodeID)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		for leaseID, node := range r.LeaseNodes {
			if node == a.cfg.NodeID {
				ret := events.QuotaReturned{ID: r.ID, LeaseID: leaseID, ReturnedAt: a.Now().UTC()}
				if err := a.appendToken(ctx, r, ret, "node:"+node); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// remaining is what is left of each limit; nil means unlimited.
type remaining struct {
	TotalRequests *int64 `json:"total_requests"`
	PaidRequests  *int64 `json:"paid_requests"`
	WalletAmount  *int64 `json:"wallet_amount"`
}

// remainingOf is what the token has left: what no node holds plus what
// this node's lease still holds.
func remainingOf(t domain.Token, own events.Quota) remaining {
	avail := t.Available()
	pick := func(a, own int64) *int64 {
		if a < 0 {
			return nil
		}
		v := a + own
		return &v
	}
	return remaining{
		TotalRequests: pick(avail.Requests, own.Requests),
		PaidRequests:  pick(avail.PaidRequests, own.PaidRequests),
		WalletAmount:  pick(avail.Credits, own.Credits),
	}
}

// tokenOf turns the read model into the aggregate that decides commands.
func tokenOf(r projections.TokenRecord) domain.Token {
	return domain.Token{
		ID: r.ID, AccountID: r.AccountID, Name: r.Name, Scopes: r.Scopes, Environment: r.Environment,
		Hash: r.Hash, RefreshHash: r.RefreshHash, SpentRefreshHashes: r.SpentRefreshHashes,
		PreviousHash: r.PreviousHash, PreviousValidUntil: r.PreviousValidUntil,
		Limits: r.Limits, RateLimit: r.RateLimit, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		RevokedAt: r.RevokedAt, Used: r.Used, Leases: r.Leases, Version: r.Version,
	}
}

// peek returns this node's lease of a token, if it holds one (a snapshot).
func (m *quotaManager) peek(tokenID string) *tokenLease {
	v, ok := m.leases.Load(tokenID)
	if !ok {
		return nil
	}
	l := v.(*tokenLease)
	l.mu.Lock()
	defer l.mu.Unlock()
	return &tokenLease{id: l.id, left: l.left, used: l.used, lastUsed: l.lastUsed}
}

// leftOf is what this node's lease of a token still holds.
func (m *quotaManager) leftOf(tokenID string) events.Quota {
	if l := m.peek(tokenID); l != nil {
		return l.left
	}
	return events.Quota{}
}

// ReturnLeases settles and gives back every quota and wallet lease this
// node holds (on shutdown).
func (a *API) ReturnLeases(ctx context.Context) error { return a.SettleLeases(ctx, 0) }

// SettleLeases settles what this node's quota and wallet leases spent and
// closes those idle for at least idle. workers.Housekeeping calls it.
func (a *API) SettleLeases(ctx context.Context, idle time.Duration) error {
	return errors.Join(a.quota.returnLeases(ctx, idle), a.quota.settleWallets(ctx, idle))
}
