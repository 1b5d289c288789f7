package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/projections"
)

// rebuild drops every projection and replays the event stream into it,
// drawing a progress bar (events/s, ETA). The server must be stopped: Pebble
// allows one process per directory.
func rebuild(ctx context.Context, cfg node.Config, stderr io.Writer) error {
	defer debug.SetGCPercent(debug.SetGCPercent(projections.RebuildGCPercent))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.NATSListen = "" // a rebuild serves no subscribers
	st, err := node.OpenStorage(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	eventsP, err := projections.NewProjector(st.DB, projections.Config{Logger: cfg.Logger}, st.Projections()...)
	if err != nil {
		return err
	}
	usageP, err := projections.NewProjector(st.DB, node.UsageProjectorConfig(cfg), st.UsageProjections()...)
	if err != nil {
		return err
	}
	for _, step := range []struct {
		name string
		p    *projections.Projector
	}{{"events", eventsP}, {"usage", usageP}} {
		if err := step.p.Reset(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "rebuilding %s projections\n", step.name)
		bar := newProgressBar(stderr)
		if err := step.p.CatchUp(ctx, st.JS, bar.update); err != nil {
			return err
		}
		bar.done(step.p.Applied())
	}
	return st.DB.Flush()
}

type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, start: time.Now()}
}

func (b *progressBar) update(applied, total uint64) {
	now := time.Now()
	if now.Sub(b.last) < 100*time.Millisecond && applied < total {
		return
	}
	b.last = now
	elapsed := now.Sub(b.start).Seconds()
	rate := float64(applied) / max(elapsed, 1e-9)
	frac := 1.0
	if total > 0 {
		frac = float64(applied) / float64(total)
	}
	eta := time.Duration(0)
	if rate > 0 && total > applied {
		eta = time.Duration(float64(total-applied) / rate * float64(time.Second))
	}
	const width = 30
	filled := int(frac * width)
	fmt.Fprintf(b.w, "\r[%s%s] %5.1f%% %d/%d events  %.0f events/s  ETA %s   ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100, applied, total, rate, eta.Round(time.Second))
}

func (b *progressBar) done(applied uint64) {
	elapsed := time.Since(b.start)
	fmt.Fprintf(b.w, "\rrebuilt %d events in %s (%.0f events/s)%s\n", applied, elapsed.Round(time.Millisecond),
		float64(applied)/max(elapsed.Seconds(), 1e-9), strings.Repeat(" ", 40))
}
