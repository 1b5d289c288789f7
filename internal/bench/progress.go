package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws live status lines: on a terminal one line redrawn in place
// a few times a second, elsewhere a plain line every couple of seconds.
type progress struct {
	w     io.Writer
	tty   bool
	quiet bool
}

func newProgress(w io.Writer, quiet bool) *progress {
	if w == nil {
		w, quiet = io.Discard, true
	}
	return &progress{w: w, tty: isTerminal(w), quiet: quiet}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// logf prints one line (not redrawn).
func (p *progress) logf(format string, args ...any) {
	if p.quiet {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// track calls status with the time elapsed since the start and shows its
// answer until stop is called, which draws it a last time.
func (p *progress) track(name string, status func(elapsed time.Duration) string) (stop func()) {
	if p.quiet {
		return func() {}
	}
	start := time.Now()
	every := 2 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	draw := func(final bool) {
		line := fmt.Sprintf("[%s] %s", name, status(time.Since(start)))
		switch {
		case p.tty && final:
			fmt.Fprintf(p.w, "\r%s\033[K\n", line)
		case p.tty:
			fmt.Fprintf(p.w, "\r%s\033[K", line)
		case final:
			fmt.Fprintln(p.w, line+" (done)")
		default:
			fmt.Fprintln(p.w, line)
		}
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				draw(true)
				return
			case <-t.C:
				draw(false)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// countStatus describes progress through a known amount of work.
func countStatus(what string, done func() int64, total int64) func(time.Duration) string {
	return func(elapsed time.Duration) string {
		n := done()
		rate := float64(n) / max(elapsed.Seconds(), 1e-9)
		eta := "?"
		if rate > 0 && total > n {
			eta = time.Duration(float64(total-n) / rate * float64(time.Second)).Round(time.Second).String()
		} else if n >= total {
			eta = "0s"
		}
		return fmt.Sprintf("%s %s/%s  %s/s  elapsed %s  remaining %s", what, group(n), group(total), group(int64(rate)),
			elapsed.Round(100*time.Millisecond), eta)
	}
}

// group writes n with thousands separators: 1234567 → 1,234,567.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
