package node

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// --refresh-token-ttl: zero takes the default (720h), a negative lifetime
// is a configuration error that names the flag.
func TestRefreshTokenTTLConfig(t *testing.T) {
	t.Parallel()
	var c Config
	c.setDefaults()
	if c.RefreshTokenTTL != 720*time.Hour {
		t.Fatalf("default refresh token TTL %s", c.RefreshTokenTTL)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.RefreshTokenTTL = -time.Hour
	err := c.Validate()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "--refresh-token-ttl must be a positive duration") {
		t.Fatalf("negative TTL: %v", err)
	}
}
