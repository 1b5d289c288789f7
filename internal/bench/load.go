package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Request is one HTTP request a scenario sends over and over.
type Request struct {
	Method string
	URL    string
	// Header holds name/value pairs.
	Header [][2]string
	Body   []byte
	// Expect, if set, must occur in a 2xx answer's body (a verdict such as
	// "valid":true); an answer without it counts as an error.
	Expect []byte
}

// client sends requests with fasthttp's client: net/http's costs several
// times as much CPU per request, and the load generator shares the cores
// with the servers it measures. Every HTTP scenario and the baseline use
// the same client so that their ratio is fair.
type client struct {
	c *fasthttp.Client
}

func newClient(conns int) *client {
	return &client{c: &fasthttp.Client{
		MaxConnsPerHost:               max(conns, 1) + 16,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		MaxIdleConnDuration:           time.Minute,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: false,
	}}
}

// close drops idle keep-alive connections, so a server's graceful shutdown
// does not wait for them.
func (c *client) close() { c.c.CloseIdleConnections() }

// sender is one worker's reusable request and response.
type sender struct {
	c    *client
	r    *Request
	req  *fasthttp.Request
	resp *fasthttp.Response
}

func (c *client) sender(r *Request) *sender {
	req := &fasthttp.Request{}
	req.SetRequestURI(r.URL)
	req.Header.SetMethod(r.Method)
	for _, h := range r.Header {
		req.Header.Set(h[0], h[1])
	}
	if r.Body != nil {
		req.SetBody(r.Body)
	}
	return &sender{c: c, r: r, req: req, resp: &fasthttp.Response{}}
}

// send sends the request once and checks the answer.
func (s *sender) send() error {
	s.resp.Reset()
	if err := s.c.c.Do(s.req, s.resp); err != nil {
		return err
	}
	if code := s.resp.StatusCode(); code < 200 || code > 299 {
		return fmt.Errorf("%s %s: status %d: %.200s", s.r.Method, s.r.URL, code, s.resp.Body())
	}
	if s.r.Expect != nil && !bytes.Contains(s.resp.Body(), s.r.Expect) {
		return fmt.Errorf("%s %s: answer lacks %s: %.200s", s.r.Method, s.r.URL, s.r.Expect, s.resp.Body())
	}
	return nil
}

// do sends one request and returns the status and a copy of the body.
func (c *client) do(method, url string, body []byte, header ...[2]string) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for _, h := range header {
		req.Header.Set(h[0], h[1])
	}
	if body != nil {
		req.SetBody(body)
	}
	if err := c.c.Do(req, resp); err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// loadConfig is how hard and how long one closed-loop run goes.
type loadConfig struct {
	workers  int
	duration time.Duration
	warmup   time.Duration
	// requests, if positive, ends the run after that many requests instead
	// of after duration (Go benchmarks: b.N).
	requests int64
}

// loadResult is what a closed-loop run measured.
type loadResult struct {
	hist     Histogram
	count    int64 // requests answered, errors included
	errors   int64
	elapsed  time.Duration
	firstErr error
}

func (r loadResult) rate() float64 { return float64(r.count) / max(r.elapsed.Seconds(), 1e-9) }

// runLoad drives workers that each send a request, wait for its answer and
// send the next (a closed loop). Warm-up requests open the connections and
// are not recorded. Every answer's latency is recorded, errors included.
//
// measured, if not nil, wraps the measured phase (profiling).
func runLoad(ctx context.Context, cfg loadConfig, newSend func() func() error, prog *progress, name string, measured func(func())) loadResult {
	if measured == nil {
		measured = func(f func()) { f() }
	}
	workers := max(cfg.workers, 1)
	sends := make([]func() error, workers)
	for i := range sends {
		sends[i] = newSend()
	}
	if cfg.warmup > 0 {
		phase(ctx, sends, time.Now().Add(cfg.warmup), 0, nil)
	}
	var res loadResult
	var count, errs atomic.Int64
	stop := prog.track(name, func(elapsed time.Duration) string {
		n := count.Load()
		s := fmt.Sprintf("%s req  %s req/s  errors %d  elapsed %s", group(n), group(int64(float64(n)/max(elapsed.Seconds(), 1e-9))),
			errs.Load(), elapsed.Round(100*time.Millisecond))
		if cfg.requests <= 0 {
			s += fmt.Sprintf("/%s  remaining %s", cfg.duration, max(cfg.duration-elapsed, 0).Round(100*time.Millisecond))
		}
		return s
	})
	var hists []Histogram
	var firstErr error
	measured(func() {
		start := time.Now()
		deadline := start.Add(cfg.duration)
		if cfg.requests > 0 {
			deadline = start.Add(24 * time.Hour)
		}
		hists, firstErr = phase(ctx, sends, deadline, cfg.requests, &counters{count: &count, errors: &errs})
		res.elapsed = time.Since(start)
	})
	stop()
	for i := range hists {
		res.hist.Merge(&hists[i])
	}
	res.count, res.errors, res.firstErr = count.Load(), errs.Load(), firstErr
	return res
}

type counters struct {
	count, errors *atomic.Int64
}

// phase runs every send in its own goroutine until the deadline, ctx's end
// or (limit > 0) limit requests in all.
func phase(ctx context.Context, sends []func() error, deadline time.Time, limit int64, c *counters) ([]Histogram, error) {
	hists := make([]Histogram, len(sends))
	var issued atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for i, send := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &hists[i]
			for n := 0; ; n++ {
				if limit > 0 && issued.Add(1) > limit {
					return
				}
				if n%64 == 0 && ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := send()
				t1 := time.Now()
				if c != nil {
					h.Record(t1.Sub(t0))
					c.count.Add(1)
					if err != nil {
						c.errors.Add(1)
						errMu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						errMu.Unlock()
					}
				}
				if err != nil && errors.Is(err, fasthttp.ErrNoFreeConns) {
					time.Sleep(time.Millisecond)
				}
				if limit <= 0 && t1.After(deadline) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return hists, firstErr
}

// firstError keeps the first of many concurrent errors.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
