package projections

import (
	"encoding/base64"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// ScopeRecord is the read model of one scope of the catalog.
type ScopeRecord struct {
	Name         string                   `json:"name"`
	Description  string                   `json:"description"`
	Domain       string                   `json:"domain"`
	Endpoints    []events.Endpoint        `json:"endpoints"`
	Requirements events.ScopeRequirements `json:"requirements"`
	// Price is the cost of one call in credits.
	Price     int64     `json:"price"`
	DefinedAt time.Time `json:"defined_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Version is the stream sequence of the scope's last event.
	Version uint64 `json:"version"`
}

// Scopes projects the scope catalog by name and by domain. Records are
// cached in memory: token issuing and verification look scopes up.
type Scopes struct {
	db      *pebble.DB
	cache   *recordCache[ScopeRecord]
	touched []string
}

// NewScopes returns the scope catalog projection on db.
func NewScopes(db *pebble.DB) *Scopes {
	return &Scopes{db: db, cache: newRecordCache[ScopeRecord](scopeCacheCapacity)}
}

var _ Committer = (*Scopes)(nil)

func (s *Scopes) AfterCommit() {
	s.cache.invalidate(s.touched)
	s.touched = s.touched[:0]
}

func (s *Scopes) AfterReset() { s.cache.clear() }

var _ Projection = (*Scopes)(nil)

// Keys: scp/n/<name> holds the record, scp/d/<domain>/<name> (empty value)
// indexes it by domain. Names and domains never contain '/', so key order
// is name order within each range.
const (
	prefixScopes       = "scp/"
	prefixScopeName    = prefixScopes + "n/"
	prefixScopeDomain  = prefixScopes + "d/"
	scopeCacheCapacity = 10_000
)

func (*Scopes) Name() string       { return "scopes" }
func (*Scopes) Version() int       { return 1 }
func (*Scopes) Prefixes() []string { return []string{prefixScopes} }

func scopeKey(name string) []byte { return []byte(prefixScopeName + name) }

func scopeDomainPrefix(domain string) string { return prefixScopeDomain + domain + "/" }

func (s *Scopes) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeScopeDefined:
		p, err := events.Decode[events.ScopeDefined](ev)
		if err != nil {
			return err
		}
		return s.put(tx, ScopeRecord{
			Name: p.Name, Description: p.Description, Domain: p.Domain, Endpoints: p.Endpoints,
			Requirements: p.Requirements, Price: p.Price, DefinedAt: p.DefinedAt, UpdatedAt: p.DefinedAt,
			Version: ev.Sequence,
		})
	case events.TypeScopeUpdated:
		p, err := events.Decode[events.ScopeUpdated](ev)
		if err != nil {
			return err
		}
		var rec ScopeRecord
		ok, err := tx.GetJSON(scopeKey(p.Name), &rec)
		if err != nil || !ok {
			return err
		}
		rec.Description, rec.Domain, rec.Endpoints, rec.Requirements, rec.Price =
			p.Description, p.Domain, p.Endpoints, p.Requirements, p.Price
		rec.UpdatedAt, rec.Version = p.UpdatedAt, ev.Sequence
		return s.put(tx, rec)
	}
	return nil
}

// put stores rec and moves its domain index entry when the domain changed.
func (s *Scopes) put(tx *Tx, rec ScopeRecord) error {
	if rec.Endpoints == nil {
		rec.Endpoints = []events.Endpoint{}
	}
	if rec.Requirements.Scopes == nil {
		rec.Requirements.Scopes = []string{}
	}
	var old ScopeRecord
	existed, err := tx.GetJSON(scopeKey(rec.Name), &old)
	if err != nil {
		return err
	}
	if existed && old.Domain != rec.Domain {
		if err := tx.Delete([]byte(scopeDomainPrefix(old.Domain) + old.Name)); err != nil {
			return err
		}
	}
	s.touched = append(s.touched, rec.Name)
	if err := tx.SetJSON(scopeKey(rec.Name), &rec); err != nil {
		return err
	}
	return tx.Set([]byte(scopeDomainPrefix(rec.Domain)+rec.Name), nil)
}

// Get returns the scope called name. The record's slices are shared with
// the cache: callers must not modify them.
func (s *Scopes) Get(name string) (ScopeRecord, bool, error) {
	return s.cache.load(s.db, prefixScopeName, name)
}

// List returns scopes in name order after cursor, only those of domain when
// it is not empty. The cursor is opaque to callers: the last name listed.
func (s *Scopes) List(domain, cursor string, limit int) (Page[ScopeRecord], error) {
	limit = max(limit, 1)
	prefix := prefixScopeName
	if domain != "" {
		prefix = scopeDomainPrefix(domain)
	}
	lower := []byte(prefix)
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !events.ValidID(string(raw)) {
			return Page[ScopeRecord]{}, ErrBadCursor
		}
		// The first key after every key of the cursor's name.
		lower = append([]byte(prefix), append(raw, 0)...)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd([]byte(prefix))})
	if err != nil {
		return Page[ScopeRecord]{}, err
	}
	defer it.Close()
	page := Page[ScopeRecord]{Items: []ScopeRecord{}}
	for ok := it.First(); ok; ok = it.Next() {
		if len(page.Items) == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(page.Items[limit-1].Name))
			break
		}
		rec, found, err := s.Get(string(it.Key()[len(prefix):]))
		if err != nil {
			return page, err
		}
		if found {
			page.Items = append(page.Items, rec)
		}
	}
	return page, it.Error()
}
