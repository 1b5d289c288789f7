package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// --refresh-token-ttl and TOLLGATE_REFRESH_TOKEN_TTL: a Go duration,
// default 720h, the flag winning over the environment; zero or negative is
// refused with an error naming both.
func TestRefreshTokenTTLFlag(t *testing.T) {
	t.Setenv("TOLLGATE_REFRESH_TOKEN_TTL", "") // restored after the test
	for _, tc := range []struct {
		env  string
		args []string
		want time.Duration
		err  string
	}{
		{want: 720 * time.Hour},
		{env: "48h", want: 48 * time.Hour},
		{env: "48h", args: []string{"--refresh-token-ttl", "90m"}, want: 90 * time.Minute},
		{args: []string{"--refresh-token-ttl", "0"}, err: "--refresh-token-ttl (TOLLGATE_REFRESH_TOKEN_TTL) must be a positive duration"},
		{env: "-1h", err: "must be a positive duration"},
		{env: "30 days", err: "TOLLGATE_REFRESH_TOKEN_TTL"},
	} {
		if tc.env == "" {
			os.Unsetenv("TOLLGATE_REFRESH_TOKEN_TTL")
		} else {
			os.Setenv("TOLLGATE_REFRESH_TOKEN_TTL", tc.env)
		}
		cfg, err := parseFlags("serve", tc.args, io.Discard)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("env %q args %q: %v, want an error with %q", tc.env, tc.args, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("env %q args %q: %v", tc.env, tc.args, err)
		case tc.err == "" && cfg.RefreshTokenTTL != tc.want:
			t.Errorf("env %q args %q: %s, want %s", tc.env, tc.args, cfg.RefreshTokenTTL, tc.want)
		}
	}
}
