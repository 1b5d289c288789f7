package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

const (
	// maxStatsBuckets bounds the time series one request may ask for.
	maxStatsBuckets   = 10_000
	defaultStatsRange = 24 * time.Hour
)

// getStats answers GET /stats?token_id=&environment=&from=&to=&granularity=
// with the verify usage of the caller's account (or, for admin, the one
// named by account_id) in one environment, or of one of its tokens.
//
// The environment is the caller key's unless environment is given (live
// keys see both); with token_id it defaults to the token's. to defaults to
// now, from to 24 hours before to, granularity to hour; the series holds
// at most 10,000 buckets. Totals, IPs and domains cover all usage the
// usage stream retains; the series covers [from, to).
func (a *API) getStats(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	env := c.Query("environment")
	if env != "" && env != domain.EnvLive && env != domain.EnvTest {
		return invalidRequest("environment must be live or test",
			domain.FieldProblem{Field: "environment", Message: "must be live or test"})
	}
	if env != "" && !a.envVisible(c, env) {
		return errForbidden
	}
	q := projections.StatsQuery{AccountID: account, Environment: env, TokenID: c.Query("token_id"),
		Granularity: c.Query("granularity", projections.GranularityHour)}
	if err := a.statsRange(c, &q); err != nil {
		return err
	}
	if q.TokenID != "" {
		rec, err := a.statsToken(c, q.TokenID)
		if err != nil {
			return err
		}
		if rec.AccountID != account || (env != "" && rec.Environment != env) || !a.envVisible(c, rec.Environment) {
			return notFound("token")
		}
		q.Environment = rec.Environment
	}
	if q.Environment == "" {
		q.Environment = principal(c).Environment
	}
	res, err := a.Stats.Query(q)
	if errors.Is(err, projections.ErrInvalidStatsQuery) {
		return invalidRequest(err.Error())
	}
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// statsToken finds a token by id, asking the stream when this node has not
// seen it yet (issued on another node a moment ago).
func (a *API) statsToken(c *fiber.Ctx, id string) (projections.TokenRecord, error) {
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
	if !ok {
		return rec, notFound("token")
	}
	return rec, nil
}

// statsRange reads from, to and granularity into q and checks them.
func (a *API) statsRange(c *fiber.Ctx, q *projections.StatsQuery) error {
	width, err := projections.BucketWidth(q.Granularity)
	if err != nil {
		return invalidRequest("granularity must be minute, hour or day",
			domain.FieldProblem{Field: "granularity", Message: "must be minute, hour or day"})
	}
	q.To = a.now(c)
	if raw := c.Query("to"); raw != "" {
		if q.To, err = time.Parse(time.RFC3339, raw); err != nil {
			return invalidRequest("to must be an RFC 3339 time", domain.FieldProblem{Field: "to", Message: "must be an RFC 3339 time"})
		}
	}
	q.From = q.To.Add(-defaultStatsRange)
	if raw := c.Query("from"); raw != "" {
		if q.From, err = time.Parse(time.RFC3339, raw); err != nil {
			return invalidRequest("from must be an RFC 3339 time", domain.FieldProblem{Field: "from", Message: "must be an RFC 3339 time"})
		}
	}
	if !q.From.Before(q.To) {
		return invalidRequest("from must be before to", domain.FieldProblem{Field: "from", Message: "must be before to"})
	}
	// The series starts with the bucket that holds from.
	if span := q.To.Sub(q.From.Truncate(width)); span > maxStatsBuckets*width {
		return invalidRequest("the range holds more than 10000 buckets: narrow it or use a coarser granularity",
			domain.FieldProblem{Field: "granularity", Message: "at most 10000 buckets per request"})
	}
	return nil
}
