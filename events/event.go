// Package events defines Tollgate's event envelope, the payload types of every
// event, the NATS subject scheme and the JetStream event store.
//
// The JetStream stream is the source of truth; everything else (projections,
// caches) is rebuilt from it.
package events

import (
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"time"
)

// Event is one stored fact. The envelope is the documented wire format that
// downstream subscribers decode: JSON with the field names below.
type Event struct {
	// ID is unique per event and doubles as the JetStream Nats-Msg-Id, so an
	// append retried with the same event is stored once.
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	AggregateType string          `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	AccountID     string          `json:"account_id,omitempty"`
	Environment   string          `json:"environment,omitempty"`
	Time          time.Time       `json:"time"`
	Actor         string          `json:"actor,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Data          json.RawMessage `json:"data"`

	// Sequence is the stream sequence, known once the event was read back or
	// appended. It is not part of the encoded envelope.
	Sequence uint64 `json:"-"`
}

// Payload is the typed body of an event. Each payload names its own type and
// version explicitly: names stored in events never come from reflection.
type Payload interface {
	EventType() string
	EventVersion() int
}

// Meta is the envelope information a command handler supplies.
type Meta struct {
	ID            string
	AggregateType string
	AggregateID   string
	AccountID     string
	Environment   string
	Time          time.Time
	Actor         string
	CorrelationID string
}

// ErrInvalidEvent is returned for events that cannot be stored or decoded.
var ErrInvalidEvent = errors.New("events: invalid event")

// New builds an event from its metadata and payload.
func New(m Meta, p Payload) (Event, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return Event{}, fmt.Errorf("%w: encode %s: %v", ErrInvalidEvent, p.EventType(), err)
	}
	ev := Event{
		ID:            m.ID,
		Type:          p.EventType(),
		Version:       p.EventVersion(),
		AggregateType: m.AggregateType,
		AggregateID:   m.AggregateID,
		AccountID:     m.AccountID,
		Environment:   m.Environment,
		Time:          m.Time.UTC(),
		Actor:         m.Actor,
		CorrelationID: m.CorrelationID,
		Data:          data,
	}
	return ev, ev.Validate()
}

// Validate checks that the event can be stored under its subject.
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: missing id", ErrInvalidEvent)
	case len(e.ID) > 64:
		return fmt.Errorf("%w: id longer than 64 characters", ErrInvalidEvent)
	case !validToken(e.AggregateType):
		return fmt.Errorf("%w: aggregate type %q", ErrInvalidEvent, e.AggregateType)
	case !validToken(e.AggregateID):
		return fmt.Errorf("%w: aggregate id %q", ErrInvalidEvent, e.AggregateID)
	case !validType(e.Type):
		return fmt.Errorf("%w: type %q", ErrInvalidEvent, e.Type)
	case e.Version < 1:
		return fmt.Errorf("%w: version %d", ErrInvalidEvent, e.Version)
	case e.Time.IsZero():
		return fmt.Errorf("%w: missing time", ErrInvalidEvent)
	}
	return nil
}

// Decode unmarshals an event's payload into T.
func Decode[T Payload](e Event) (T, error) {
	var p T
	if e.Type != p.EventType() {
		return p, fmt.Errorf("%w: %s is not %s", ErrInvalidEvent, e.Type, p.EventType())
	}
	if err := json.Unmarshal(e.Data, &p); err != nil {
		return p, fmt.Errorf("%w: decode %s: %v", ErrInvalidEvent, e.Type, err)
	}
	return p, nil
}

// Marshal encodes the envelope for storage.
func Marshal(e Event) ([]byte, error) { return json.Marshal(e) }

// Unmarshal decodes a stored envelope; seq is the stream sequence it was read at.
func Unmarshal(data []byte, seq uint64) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	e.Sequence = seq
	return e, nil
}
