package workers

import (
	"context"
	"log/slog"
	"time"
)

// LeaseKeeper settles and expires quota and credit leases (the API
// implements it: the leases live in its quota manager).
type LeaseKeeper interface {
	// SettleLeases records what this node's leases spent and closes the
	// ones idle for at least idle.
	SettleLeases(ctx context.Context, idle time.Duration) error
	// ExpireLeases releases leases whose holder stopped renewing them.
	ExpireLeases(ctx context.Context) error
}

// HousekeepingConfig configures [Housekeeping]. Zero fields take defaults.
type HousekeepingConfig struct {
	// SettleEvery is how often leases are settled. Default 1s: what a crash
	// can leave unsettled.
	SettleEvery time.Duration
	// IdleClose closes a lease unused for this long, so other nodes can
	// have its quota. Default 30s.
	IdleClose time.Duration
	// ExpireEvery is how often abandoned leases are looked for. Default 10s.
	ExpireEvery time.Duration
	Logger      *slog.Logger
}

func (c *HousekeepingConfig) setDefaults() {
	if c.SettleEvery <= 0 {
		c.SettleEvery = time.Second
	}
	if c.IdleClose <= 0 {
		c.IdleClose = 30 * time.Second
	}
	if c.ExpireEvery <= 0 {
		c.ExpireEvery = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Housekeeping settles leases and expires abandoned ones until ctx ends.
func Housekeeping(ctx context.Context, k LeaseKeeper, cfg HousekeepingConfig) {
	cfg.setDefaults()
	settle := time.NewTicker(cfg.SettleEvery)
	defer settle.Stop()
	expire := time.NewTicker(cfg.ExpireEvery)
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-settle.C:
			if err := k.SettleLeases(ctx, cfg.IdleClose); err != nil && ctx.Err() == nil {
				cfg.Logger.Warn("settling leases", "err", err)
			}
		case <-expire.C:
			if err := k.ExpireLeases(ctx); err != nil && ctx.Err() == nil {
				cfg.Logger.Warn("expiring abandoned leases", "err", err)
			}
		}
	}
}
