package bench

import (
	"os"
	"testing"
)

// The memory scenario starts this test binary again as its NATS server.
func TestMain(m *testing.M) {
	RunNATSChildIfAsked()
	os.Exit(m.Run())
}
