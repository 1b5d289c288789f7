package projections

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"

	"github.com/cockroachdb/pebble"
)

// ErrBadCursor is returned for a cursor this projection did not hand out.
var ErrBadCursor = errors.New("invalid cursor")

// Page is one page of a listing.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// listInOrder pages through an index whose keys are prefix + big-endian
// sequence and whose values are record ids, in sequence order, starting
// after cursor. get loads a record, seq says where it stands in the index,
// keep (optional) filters.
func listInOrder[T any](db *pebble.DB, prefix []byte, cursor string, limit int,
	get func(id string) (T, bool, error), seq func(T) uint64, keep func(T) bool) (Page[T], error) {
	limit = max(limit, 1)
	lower := prefix
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(raw) != 8 || binary.BigEndian.Uint64(raw) == math.MaxUint64 {
			return Page[T]{}, ErrBadCursor
		}
		lower = append(append([]byte(nil), prefix...), u64(binary.BigEndian.Uint64(raw)+1)...)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return Page[T]{}, err
	}
	defer it.Close()
	page := Page[T]{Items: []T{}}
	for ok := it.First(); ok; ok = it.Next() {
		rec, found, err := get(string(it.Value()))
		if err != nil {
			return page, err
		}
		if !found || (keep != nil && !keep(rec)) {
			continue
		}
		if len(page.Items) == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString(u64(seq(page.Items[limit-1])))
			break
		}
		page.Items = append(page.Items, rec)
	}
	return page, it.Error()
}
