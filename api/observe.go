package api

import (
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate/tollgate/projections"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	byRoute  sync.Map // routeKey → routeMetrics
}

func newHTTPMetrics(reg *prometheus.Registry, proj *projections.Projector) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
	}
	applied := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_projection_applied_sequence", Help: "Last event stream sequence applied to the projections.",
	}, func() float64 { return float64(proj.Applied()) })
	skipped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tollgate_projection_skipped_events_total", Help: "Events the projections could not apply.",
	}, func() float64 { return float64(proj.Skipped()) })
	for _, c := range []prometheus.Collector{m.requests, m.duration, applied, skipped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records metrics and an access log line (never headers or bodies).
func (a *API) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			return herr
		}
	}
	status := c.Response().StatusCode()
	route := c.Route().Path
	if route == "/" && c.Path() != "/" {
		route = "unmatched"
	}
	elapsed := time.Since(start)
	if p := principal(c); p != nil && route != "/verify" { // verifies are recorded with their verdict
		a.recordAPIUsage(p, c.Method(), route, a.clientIP(c).String(), status, elapsed, start)
	}
	a.metrics.observe(c.Method(), route, status, elapsed)
	if a.Logger.Enabled(c.UserContext(), slog.LevelDebug) { // no argument boxing per request otherwise
		a.Logger.Debug("request", "method", c.Method(), "route", route, "status", status,
			"latency_ms", float64(elapsed.Microseconds())/1000, "request_id", requestID(c))
	}
	return nil
}

// routeMetrics are one route's collectors, looked up once.
type routeMetrics struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type routeKey struct {
	method, route string
	status        int
}

// observe counts a request without hashing label values each time.
func (m *httpMetrics) observe(method, route string, status int, took time.Duration) {
	k := routeKey{method, route, status}
	v, ok := m.byRoute.Load(k)
	if !ok {
		v, _ = m.byRoute.LoadOrStore(k, routeMetrics{
			count:    m.requests.WithLabelValues(method, route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(method, route),
		})
	}
	rm := v.(routeMetrics)
	rm.count.Inc()
	rm.duration.Observe(took.Seconds())
}

func (a *API) metricsHandler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{}))
}

func (a *API) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (a *API) readyz(c *fiber.Ctx) error {
	if err := a.Ready(); err != nil {
		c.Set(fiber.HeaderRetryAfter, "1")
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "reason": err.Error()})
	}
	return c.JSON(fiber.Map{"status": "ready", "applied_sequence": a.Projector.Applied()})
}
