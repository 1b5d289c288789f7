//go:build unix

// Package cpuclock reads the CPU time the process has used, for benchmarks
// that report CPU per operation beside wall-clock rates: CPU time includes
// background goroutines (an embedded NATS server, Pebble compactions) and
// hardly moves when other processes compete for the cores.
package cpuclock

import (
	"syscall"
	"testing"
	"time"
)

// Process is the user and system CPU time of this process so far.
func Process() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Of is Process for a benchmark or test: an error fails it.
func Of(tb testing.TB) time.Duration {
	tb.Helper()
	d, err := Process()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
