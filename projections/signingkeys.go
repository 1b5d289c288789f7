package projections

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// SigningKeyRecord is the read model of one signing key. EncryptedPrivate is
// sealed with the cluster's key-encryption key; nothing here is a secret in
// the clear.
type SigningKeyRecord struct {
	KID              string          `json:"kid"`
	Algorithm        string          `json:"alg"`
	Public           json.RawMessage `json:"public_jwk"`
	EncryptedPrivate string          `json:"encrypted_private"`
	CreatedAt        time.Time       `json:"created_at"`
	RetiredAt        *time.Time      `json:"retired_at,omitempty"`
	PublishUntil     *time.Time      `json:"publish_until,omitempty"`
	// Seq is the stream sequence of signing_key.created: the key's age.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the key's last event.
	Version uint64 `json:"version"`
}

// SigningKeys projects the signing keys. There are few, so the whole set is
// kept in memory and replaced after every batch that changed it.
type SigningKeys struct {
	db      *pebble.DB
	touched bool

	mu    sync.Mutex
	list  []SigningKeyRecord // nil: not loaded
	epoch uint64
	gen   atomic.Uint64
}

// NewSigningKeys returns the signing-key projection on db.
func NewSigningKeys(db *pebble.DB) *SigningKeys { return &SigningKeys{db: db} }

var (
	_ Projection = (*SigningKeys)(nil)
	_ Committer  = (*SigningKeys)(nil)
)

const prefixSigningKey = "sk/"

func (*SigningKeys) Name() string       { return "signing_keys" }
func (*SigningKeys) Version() int       { return 1 }
func (*SigningKeys) Prefixes() []string { return []string{prefixSigningKey} }

func (s *SigningKeys) Apply(tx *Tx, ev events.Event) error {
	if ev.AggregateType != events.AggregateSigningKey {
		return nil
	}
	switch ev.Type {
	case events.TypeSigningKeyCreated:
		p, err := events.Decode[events.SigningKeyCreated](ev)
		if err != nil {
			return err
		}
		s.touched = true
		return tx.SetJSON([]byte(prefixSigningKey+p.KID), &SigningKeyRecord{
			KID: p.KID, Algorithm: p.Algorithm, Public: p.Public, EncryptedPrivate: p.EncryptedPrivate,
			CreatedAt: p.CreatedAt, Seq: ev.Sequence, Version: ev.Sequence,
		})
	case events.TypeSigningKeyRetired:
		p, err := events.Decode[events.SigningKeyRetired](ev)
		if err != nil {
			return err
		}
		var rec SigningKeyRecord
		ok, err := tx.GetJSON([]byte(prefixSigningKey+p.KID), &rec)
		if err != nil || !ok {
			return err
		}
		rec.RetiredAt, rec.PublishUntil, rec.Version = &p.RetiredAt, &p.PublishUntil, ev.Sequence
		s.touched = true
		return tx.SetJSON([]byte(prefixSigningKey+p.KID), &rec)
	}
	return nil
}

func (s *SigningKeys) AfterCommit() {
	if !s.touched {
		return
	}
	s.touched = false
	s.drop()
}

func (s *SigningKeys) AfterReset() { s.drop() }

func (s *SigningKeys) drop() {
	s.mu.Lock()
	s.list, s.epoch = nil, s.epoch+1
	s.mu.Unlock()
	s.gen.Add(1)
}

// Generation changes whenever the set of keys changes: a cheap way for
// readers to notice a rotation.
func (s *SigningKeys) Generation() uint64 { return s.gen.Load() }

// List returns every key, oldest first. The slice is shared: callers must
// not modify it.
func (s *SigningKeys) List() ([]SigningKeyRecord, error) {
	s.mu.Lock()
	list, epoch := s.list, s.epoch
	s.mu.Unlock()
	if list != nil {
		return list, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixSigningKey), UpperBound: prefixEnd([]byte(prefixSigningKey))})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	list = []SigningKeyRecord{}
	for ok := it.First(); ok; ok = it.Next() {
		var rec SigningKeyRecord
		// The value is valid only until Next; the record keeps Public.
		if err := json.Unmarshal(slices.Clone(it.Value()), &rec); err != nil {
			return nil, err
		}
		list = append(list, rec)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b SigningKeyRecord) int { return cmp.Compare(a.Seq, b.Seq) })
	s.mu.Lock()
	if s.epoch == epoch {
		s.list = list
	}
	s.mu.Unlock()
	return list, nil
}

// AggregateVersion is the sequence of the signing-key aggregate's last event
// as this projection has applied it: what a rotation expects.
func (s *SigningKeys) AggregateVersion() (uint64, error) {
	list, err := s.List()
	var v uint64
	for _, k := range list {
		v = max(v, k.Version)
	}
	return v, err
}
