// Package projections holds Tollgate's Pebble read models and the projector
// that feeds them from the event stream. Projections are caches: they can be
// dropped and rebuilt from the stream at any time and must then be identical.
package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	json "github.com/goccy/go-json"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// Key prefixes. Every projection owns its prefixes; the projector owns "m/".
const (
	prefixMeta = "m/"
)

// Open opens (or creates) the projection database in dir. With mem set the
// database lives in memory (tests).
func Open(dir string, mem bool) (*pebble.DB, error) {
	opts := &pebble.Options{
		Logger:       quietLogger{},
		MemTableSize: 32 << 20,
	}
	if mem {
		opts.FS = vfs.NewMem()
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", dir, err)
	}
	return db, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// kvGetter is what pebble.DB, pebble.Snapshot and an indexed pebble.Batch share.
type kvGetter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// get copies the value of key; found is false when it does not exist.
func get(r kvGetter, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

func getJSON(r kvGetter, key []byte, v any) (bool, error) {
	raw, ok, err := get(r, key)
	if !ok || err != nil {
		return false, err
	}
	return true, json.Unmarshal(raw, v)
}

// Tx is the batch one projector round writes; reads see its own writes.
type Tx struct {
	b *pebble.Batch
}

// Get reads a key, seeing writes made earlier in the same batch.
func (t *Tx) Get(key []byte) ([]byte, bool, error) { return get(t.b, key) }

// GetJSON decodes the JSON value at key into v.
func (t *Tx) GetJSON(key []byte, v any) (bool, error) { return getJSON(t.b, key, v) }

// Set writes a key.
func (t *Tx) Set(key, value []byte) error { return t.b.Set(key, value, nil) }

// SetJSON writes v encoded as JSON. Pass records by pointer: a struct
// value is copied into the interface on every call.
func (t *Tx) SetJSON(key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.b.Set(key, raw, nil)
}

// Delete removes a key.
func (t *Tx) Delete(key []byte) error { return t.b.Delete(key, nil) }

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
