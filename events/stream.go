package events

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStream is the name of the event stream.
const DefaultStream = "TOLLGATE_EVENTS"

// StreamConfig configures the event stream. Zero fields take their defaults.
type StreamConfig struct {
	// Name of the stream. Default [DefaultStream].
	Name string
	// Replicas of the stream: 1 on a single node, 3 on a cluster. Default 1.
	Replicas int
	// DuplicateWindow is how long event ids are remembered for idempotent
	// appends. Default 10 minutes.
	DuplicateWindow time.Duration
}

// ErrInvalidConfig wraps every configuration problem.
var ErrInvalidConfig = errors.New("events: invalid configuration")

func (c *StreamConfig) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultStream
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
}

// Validate reports every problem of the configuration at once.
func (c StreamConfig) Validate() error {
	var errs []error
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("%w: replicas must be 1 to 5, not %d", ErrInvalidConfig, c.Replicas))
	}
	if c.DuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("%w: duplicate window must be > 0", ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// EnsureStream creates the event stream or migrates an existing one to cfg.
// It is idempotent: running it on every start changes nothing when the
// stream already has this configuration.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	want := jetstream.StreamConfig{
		Name:               cfg.Name,
		Description:        "Tollgate event log (source of truth)",
		Subjects:           []string{AllSubjects},
		Retention:          jetstream.LimitsPolicy,
		Storage:            jetstream.FileStorage,
		Replicas:           cfg.Replicas,
		Duplicates:         cfg.DuplicateWindow,
		Discard:            jetstream.DiscardOld,
		MaxMsgSize:         1 << 20,
		AllowAtomicPublish: true,
		DenyDelete:         true,
		DenyPurge:          true,
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	str, err := js.CreateOrUpdateStream(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("%w: ensure stream %s: %v", ErrUnavailable, cfg.Name, err)
	}
	return str, nil
}

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// nuidLike returns a random 22-character base62 identifier for batch ids.
func nuidLike() string {
	var b [22]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = base62Alphabet[int(b[i])%62]
	}
	return string(b[:])
}
