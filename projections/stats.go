package projections

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
	json "github.com/goccy/go-json"

	"github.com/tollgate/tollgate/events"
)

// Stats projects the usage stream into usage statistics per account and
// environment and per token: totals, callers' IPs, per-domain counts and
// time series by minute, hour and day. It belongs to a [Projector] on
// [events.UsageStream] with [DecodeUsageBatch]; only verify records count.
//
// Totals, IPs and domains cover everything the usage stream holds (it is
// age-limited, so a rebuild forgets what the stream has dropped); the time
// series is queried by range.
//
// Keys, under "st/<account>/<env>/" then "a/" for the account's scope or
// "t/<token>/" for one token's:
//
//	tot                     totals
//	ip/<ip>                 requests per caller IP
//	dom/<domain>            requests, paid requests and errors per domain
//	ser/<m|h|d>/<start>     the same per bucket; start is big-endian Unix seconds
type Stats struct {
	db *pebble.DB
	// lastUsed caches each token's last use: token views read it on every
	// /accounts/me and listing.
	lastUsed *recordCache[time.Time]
	touched  []string
}

var _ Committer = (*Stats)(nil)

func (s *Stats) AfterCommit() {
	s.lastUsed.invalidate(s.touched)
	s.touched = s.touched[:0]
}

func (s *Stats) AfterReset() { s.lastUsed.clear() }

// NewStats returns the stats projection on db.
func NewStats(db *pebble.DB) *Stats {
	return &Stats{db: db, lastUsed: newRecordCache[time.Time](200_000)}
}

var _ Projection = (*Stats)(nil)

const prefixStats = "st/"

func (*Stats) Name() string       { return "stats" }
func (*Stats) Version() int       { return 2 }
func (*Stats) Prefixes() []string { return []string{prefixStats} }

// Granularities of the time series.
const (
	GranularityMinute = "minute"
	GranularityHour   = "hour"
	GranularityDay    = "day"
)

// statsSeries are the granularities every record is counted in, with the
// letter their keys use and their width in seconds. UTC days are 86400 Unix
// seconds.
var statsSeries = []struct {
	name  string
	code  string
	width int64
}{
	{GranularityMinute, "m", 60},
	{GranularityHour, "h", 3600},
	{GranularityDay, "d", 86400},
}

// MaxStatsItems caps the IPs and the domains one query returns: the busiest
// IPs, and the first domains in name order.
const MaxStatsItems = 1000

// ErrInvalidStatsQuery is returned for a query Stats cannot answer.
var ErrInvalidStatsQuery = errors.New("invalid stats query")

// BucketWidth is the width of a granularity's buckets.
func BucketWidth(granularity string) (time.Duration, error) {
	_, width, err := seriesOf(granularity)
	return time.Duration(width) * time.Second, err
}

// seriesOf returns a granularity's key letter and width in seconds.
func seriesOf(granularity string) (code string, width int64, err error) {
	for _, s := range statsSeries {
		if s.name == granularity {
			return s.code, s.width, nil
		}
	}
	return "", 0, fmt.Errorf("%w: granularity must be minute, hour or day", ErrInvalidStatsQuery)
}

// statsCounts is the value of every stats key; each kind of key uses the
// fields it needs.
type statsCounts struct {
	Requests     int64 `json:"requests"`
	PaidRequests int64 `json:"paid_requests,omitempty"`
	Errors       int64 `json:"errors,omitempty"`
	CreditsSpent int64 `json:"credits_spent,omitempty"`
}

func (c *statsCounts) add(d statsCounts) {
	c.Requests += d.Requests
	c.PaidRequests += d.PaidRequests
	c.Errors += d.Errors
	c.CreditsSpent += d.CreditsSpent
}

// statsScope is the key prefix of an account's (token empty) or a token's
// statistics in one environment.
func statsScope(account, env, token string) string {
	if token == "" {
		return prefixStats + account + "/" + env + "/a/"
	}
	return prefixStats + account + "/" + env + "/t/" + token + "/"
}

func seriesKey(scope, code string, start int64) string {
	return scope + "ser/" + code + "/" + string(u64(uint64(start)))
}

// statsDelta accumulates one usage batch, so each key it touches is read
// and written once. Its keys are structs: a record adds to a dozen keys,
// and building their strings per record would cost more than counting.
type statsDelta map[deltaKey]statsCounts

// deltaKey names one statistics key: a scope (an account's environment,
// or one of its tokens) and a dimension of it.
type deltaKey struct {
	account, env, token string
	dim                 byte   // dimTotal, dimIP, dimDomain or a series code
	value               string // the IP or the domain
	start               int64  // a series bucket's start
}

const (
	dimTotal  = 't'
	dimIP     = 'i'
	dimDomain = 'o'
)

func (k deltaKey) String() string {
	scope := statsScope(k.account, k.env, k.token)
	switch k.dim {
	case dimTotal:
		return scope + "tot"
	case dimIP:
		return scope + "ip/" + k.value
	case dimDomain:
		return scope + "dom/" + k.value
	}
	return seriesKey(scope, string(rune(k.dim)), k.start)
}

func (d statsDelta) add(key deltaKey, c statsCounts) {
	cur := d[key]
	cur.add(c)
	d[key] = cur
}

// record counts a group's records in the scope of token ("" for the
// account's).
func (d statsDelta) record(token string, g events.UsageGroup, c statsCounts) {
	if !events.ValidID(g.AccountID) || !events.ValidID(g.Environment) || (token != "" && !events.ValidID(token)) {
		return // ids become key segments: anything else could collide
	}
	k := deltaKey{account: g.AccountID, env: g.Environment, token: token, dim: dimTotal}
	d.add(k, c)
	if g.IP != "" {
		k.dim, k.value = dimIP, g.IP
		d.add(k, statsCounts{Requests: c.Requests})
	}
	perBucket := c
	perBucket.CreditsSpent = 0
	if g.Domain != "" {
		k.dim, k.value = dimDomain, g.Domain
		d.add(k, perBucket)
	}
	if g.Minute != events.NoMinute && g.Minute >= 0 {
		k.value = ""
		for _, s := range statsSeries {
			k.dim, k.start = s.code[0], g.Minute-g.Minute%s.width
			d.add(k, perBucket)
		}
	}
}

// usageSummary is a usage batch's summary: read from the message, which
// holds it before its records, without decoding them; or, for a batch
// without one, computed from its records.
func usageSummary(data []byte) (events.UsageSummary, error) {
	if sum, ok := summaryAhead(data); ok {
		return sum, nil
	}
	var batch events.UsageBatch
	if err := json.Unmarshal(data, &batch); err != nil {
		return events.UsageSummary{}, fmt.Errorf("decode usage batch: %w", err)
	}
	if batch.Summary != nil {
		return *batch.Summary, nil
	}
	return events.Summarize(batch.Records), nil
}

// recordsKey opens the records of a usage batch. JSON escapes every '"'
// inside a string, so these bytes can only be the key itself, and its
// first appearance is the batch's own records when no object before it has
// a "records" member (a summary has none).
var recordsKey = []byte(`,"records":`)

// summaryAhead reads a batch's summary if it comes before the records,
// which it does in every batch a node writes. It decodes only what comes
// before the records: the batch cut there and closed is a complete object
// exactly when the cut is at the top level; any other cut leaves braces
// open, fails to decode, and the caller falls back to the whole batch.
func summaryAhead(data []byte) (events.UsageSummary, bool) {
	i := bytes.Index(data, recordsKey)
	if i < 0 {
		return events.UsageSummary{}, false
	}
	head := make([]byte, i+1)
	copy(head, data[:i])
	head[i] = '}'
	var h struct {
		Summary *events.UsageSummary `json:"summary"`
	}
	if json.Unmarshal(head, &h) != nil || h.Summary == nil {
		return events.UsageSummary{}, false
	}
	return *h.Summary, true
}

func (d statsDelta) flush(tx *Tx) error {
	type entry struct {
		key string
		c   statsCounts
	}
	entries := make([]entry, 0, len(d))
	for k, c := range d {
		entries = append(entries, entry{k.String(), c})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, e := range entries {
		var cur statsCounts
		if _, err := tx.GetJSON([]byte(e.key), &cur); err != nil {
			return fmt.Errorf("read %q: %w", e.key, err)
		}
		cur.add(e.c)
		if err := tx.SetJSON([]byte(e.key), &cur); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stats) Apply(tx *Tx, ev events.Event) error {
	if ev.Type != TypeUsageBatch {
		return nil
	}
	sum, err := usageSummary(ev.Data)
	if err != nil {
		return err
	}
	delta := statsDelta{}
	for _, g := range sum.Groups {
		c := statsCounts{Requests: g.Requests, PaidRequests: g.PaidRequests, Errors: g.Errors, CreditsSpent: g.CreditsSpent}
		delta.record("", g, c)
		if g.TokenID != "" {
			delta.record(g.TokenID, g, c)
		}
	}
	for token, at := range sum.LastUsed {
		if !events.ValidID(token) {
			continue
		}
		var prev time.Time
		if _, err := tx.GetJSON(lastUsedKey(token), &prev); err != nil {
			return err
		}
		if at.After(prev) {
			if err := tx.SetJSON(lastUsedKey(token), at.UTC()); err != nil {
				return err
			}
			s.touched = append(s.touched, token)
		}
	}
	return delta.flush(tx)
}

// prefixLastUsed holds each token's last use.
const prefixLastUsed = prefixStats + "lu/"

func lastUsedKey(token string) []byte { return []byte(prefixLastUsed + token) }

// LastUsed is when the token was last used, as far as the usage stream has
// been projected; false if never.
func (s *Stats) LastUsed(token string) (time.Time, bool, error) {
	return s.lastUsed.load(s.db, prefixLastUsed, token)
}

// StatsQuery selects the statistics of an account's environment, or of one
// of its tokens, and the range and granularity of the time series.
type StatsQuery struct {
	AccountID   string
	Environment string
	// TokenID, if set, narrows the statistics to one token.
	TokenID string
	// From and To bound the series: buckets that start before To and end
	// after From, so the bucket holding From is included.
	From, To time.Time
	// Granularity is [GranularityMinute], [GranularityHour] or [GranularityDay].
	Granularity string
}

// StatsTotals are a scope's totals.
type StatsTotals struct {
	Requests     int64 `json:"requests"`
	PaidRequests int64 `json:"paid_requests"`
	Errors       int64 `json:"errors"`
	CreditsSpent int64 `json:"credits_spent"`
}

// StatsIP is how many requests named one caller IP.
type StatsIP struct {
	IP       string `json:"ip"`
	Requests int64  `json:"requests"`
}

// StatsDomain are the counts of one domain.
type StatsDomain struct {
	Domain       string `json:"domain"`
	Requests     int64  `json:"requests"`
	PaidRequests int64  `json:"paid_requests"`
	Errors       int64  `json:"errors"`
}

// StatsPoint is one bucket of the time series; T is its start.
type StatsPoint struct {
	T            time.Time `json:"t"`
	Requests     int64     `json:"requests"`
	PaidRequests int64     `json:"paid_requests"`
	Errors       int64     `json:"errors"`
}

// StatsResult answers a [StatsQuery]. IPs are sorted by requests, busiest
// first, then by IP; domains by name; both hold at most [MaxStatsItems].
// Series holds the non-empty buckets in time order.
type StatsResult struct {
	Totals  StatsTotals   `json:"totals"`
	IPs     []StatsIP     `json:"ips"`
	Domains []StatsDomain `json:"domains"`
	Series  []StatsPoint  `json:"series"`
}

// Query reads one scope's statistics from a consistent snapshot.
func (s *Stats) Query(q StatsQuery) (StatsResult, error) {
	code, width, err := seriesOf(q.Granularity)
	if err != nil {
		return StatsResult{}, err
	}
	if !q.From.Before(q.To) {
		return StatsResult{}, fmt.Errorf("%w: from must be before to", ErrInvalidStatsQuery)
	}
	if !events.ValidID(q.AccountID) || !events.ValidID(q.Environment) || (q.TokenID != "" && !events.ValidID(q.TokenID)) {
		return StatsResult{IPs: []StatsIP{}, Domains: []StatsDomain{}, Series: []StatsPoint{}}, nil
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	scope := statsScope(q.AccountID, q.Environment, q.TokenID)

	var out StatsResult
	var tot statsCounts
	if _, err := getJSON(snap, []byte(scope+"tot"), &tot); err != nil {
		return out, err
	}
	out.Totals = StatsTotals(tot)
	if out.IPs, err = s.topIPs(snap, scope); err != nil {
		return out, err
	}
	if out.Domains, err = s.domains(snap, scope); err != nil {
		return out, err
	}
	out.Series, err = s.series(snap, scope+"ser/"+code+"/", q.From, q.To, width)
	return out, err
}

// scanStats calls fn with the name after prefix and the value of every key under
// prefix in [lower, upper) (the whole prefix when they are nil), until fn
// returns false.
func scanStats(snap *pebble.Snapshot, prefix string, lower, upper []byte, fn func(name string, c statsCounts) bool) error {
	if lower == nil {
		lower = []byte(prefix)
	}
	if upper == nil {
		upper = prefixEnd([]byte(prefix))
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var c statsCounts
		if err := json.Unmarshal(it.Value(), &c); err != nil {
			return fmt.Errorf("stats key %q: %w", it.Key(), err)
		}
		if !fn(strings.TrimPrefix(string(it.Key()), prefix), c) {
			break
		}
	}
	return it.Error()
}

func (s *Stats) topIPs(snap *pebble.Snapshot, scope string) ([]StatsIP, error) {
	busiest := func(a, b StatsIP) int {
		if a.Requests != b.Requests {
			if a.Requests > b.Requests {
				return -1
			}
			return 1
		}
		return strings.Compare(a.IP, b.IP)
	}
	// Keep at most twice the cap in memory: an account may have seen
	// millions of IPs.
	ips := []StatsIP{}
	err := scanStats(snap, scope+"ip/", nil, nil, func(ip string, c statsCounts) bool {
		ips = append(ips, StatsIP{IP: ip, Requests: c.Requests})
		if len(ips) == 2*MaxStatsItems {
			slices.SortFunc(ips, busiest)
			ips = ips[:MaxStatsItems]
		}
		return true
	})
	slices.SortFunc(ips, busiest)
	return ips[:min(len(ips), MaxStatsItems)], err
}

func (s *Stats) domains(snap *pebble.Snapshot, scope string) ([]StatsDomain, error) {
	out := []StatsDomain{}
	err := scanStats(snap, scope+"dom/", nil, nil, func(domain string, c statsCounts) bool {
		out = append(out, StatsDomain{Domain: domain, Requests: c.Requests, PaidRequests: c.PaidRequests, Errors: c.Errors})
		return len(out) < MaxStatsItems
	})
	return out, err
}

// series reads the buckets under prefix that start before to and end after from.
func (s *Stats) series(snap *pebble.Snapshot, prefix string, from, to time.Time, width int64) ([]StatsPoint, error) {
	lo := max(from.Unix(), 0)
	lo -= lo % width
	// Buckets start on whole seconds: one starts before to exactly when it
	// starts before to rounded up to a second.
	hi := to.Unix()
	if to.Nanosecond() > 0 {
		hi++
	}
	out := []StatsPoint{}
	if hi <= lo {
		return out, nil
	}
	lower := append([]byte(prefix), u64(uint64(lo))...)
	upper := append([]byte(prefix), u64(uint64(hi))...)
	err := scanStats(snap, prefix, lower, upper, func(start string, c statsCounts) bool {
		if len(start) == 8 {
			t := time.Unix(int64(binary.BigEndian.Uint64([]byte(start))), 0).UTC()
			out = append(out, StatsPoint{T: t, Requests: c.Requests, PaidRequests: c.PaidRequests, Errors: c.Errors})
		}
		return true
	})
	return out, err
}
