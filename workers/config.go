package workers

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tollgate/tollgate/domain"
)

// DefaultBackoff are the delays before the 2nd to the 10th attempt:
// exponential from 5 seconds to 12 hours, about a day in all.
var DefaultBackoff = []time.Duration{
	5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
}

// Config configures the delivery workers. Zero fields take their defaults.
type Config struct {
	// Backoff are the delays before attempts 2, 3, …: a delivery gets
	// len(Backoff)+1 attempts. Default [DefaultBackoff]. The
	// --callback-backoff flag sets it.
	Backoff []time.Duration
	// Jitter spreads every delay uniformly by ± this fraction, so endpoints
	// that failed together are not retried together. Default 0.2; negative
	// disables it.
	Jitter float64
	// AllowLoopback lets callback URLs resolve to 127.0.0.0/8 and ::1
	// (--callbacks-allow-loopback, for development and tests). Private,
	// link-local and metadata addresses stay refused.
	AllowLoopback bool
	// EndpointConcurrency bounds the attempts in flight to one subscription
	// on one node. Default 4.
	EndpointConcurrency int
	// DeliveryWorkers is how many deliveries a node attempts at once.
	// Default 32.
	DeliveryWorkers int
	// FanOutWorkers is how many events a node fans out at once. Default 4.
	FanOutWorkers int
	// AckWait is how long JetStream waits for an acknowledgement before it
	// redelivers a message: how soon the work of a crashed node resumes
	// elsewhere. It must exceed RequestTimeout. Default 30s.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages per consumer. Default 1024.
	MaxAckPending int
	// RequestTimeout bounds one HTTP attempt. Default 10s.
	RequestTimeout time.Duration
	// Failure decides when an endpoint is disabled for sustained failure
	// (default: 5 dead deliveries in a row, or 24 hours without a success).
	Failure domain.FailurePolicy
	// Replicas of the work and poison streams. Default 1.
	Replicas int
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// ErrInvalidConfig wraps every configuration problem.
var ErrInvalidConfig = errors.New("workers: invalid configuration")

func (c *Config) setDefaults() {
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	if c.EndpointConcurrency <= 0 {
		c.EndpointConcurrency = 4
	}
	if c.DeliveryWorkers <= 0 {
		c.DeliveryWorkers = 32
	}
	if c.FanOutWorkers <= 0 {
		c.FanOutWorkers = 4
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1024
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for i, d := range c.Backoff {
		if d <= 0 || d > 7*24*time.Hour {
			errs = append(errs, fmt.Errorf("%w: backoff delay %d (%s) must be from 1ns to 168h", ErrInvalidConfig, i+1, d))
		}
	}
	if len(c.Backoff) > 50 {
		errs = append(errs, fmt.Errorf("%w: at most 50 backoff delays", ErrInvalidConfig))
	}
	if c.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("%w: jitter must be below 1", ErrInvalidConfig))
	}
	if c.AckWait > 0 && c.RequestTimeout > 0 && c.RequestTimeout+2*time.Second > c.AckWait {
		errs = append(errs, fmt.Errorf("%w: ack wait (%s) must exceed the request timeout (%s) by 2s", ErrInvalidConfig, c.AckWait, c.RequestTimeout))
	}
	if c.MaxAckPending > 0 && c.DeliveryWorkers > c.MaxAckPending {
		errs = append(errs, fmt.Errorf("%w: max ack pending must be at least the number of delivery workers", ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// MaxAttempts is how many attempts a delivery gets.
func (c Config) MaxAttempts() int { return len(c.Backoff) + 1 }

// nextDelay is the delay after failed attempt n (counting from 1), with
// jitter; more is false when n was the last attempt.
func (c Config) nextDelay(n int) (d time.Duration, more bool) {
	if n < 1 || n > len(c.Backoff) {
		return 0, false
	}
	d = c.Backoff[n-1]
	if c.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + c.Jitter*(2*rand.Float64()-1)))
	}
	return d, true
}
