package httpapi

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/novacron/novacron"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	wsClients *prometheus.GaugeVec
	handler   http.Handler
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "novacron_http_requests_total",
			Help: "HTTP requests answered, by route, method and status.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "novacron_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route and status (a WebSocket: up to its upgrade).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"route", "code"}),
		wsClients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "novacron_websocket_clients",
			Help: "WebSocket connections open, by route.",
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.wsClients,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}

// serveMetrics serves Prometheus text to admins, to holders of the metrics
// token, or to anyone with --metrics-public.
func (a *API) serveMetrics(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	ok := a.cfg.MetricsPublic
	if !ok && a.cfg.MetricsToken != "" {
		bearer, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ok = found && subtle.ConstantTimeCompare([]byte(bearer), []byte(a.cfg.MetricsToken)) == 1
	}
	if !ok {
		if err := a.authenticate(r, st, false); err != nil {
			writeError(w, r, err)
			return
		}
		ok = st.actor != nil && st.actor.Role == novacron.RoleAdmin
	}
	if !ok {
		if st.actor == nil {
			writeError(w, r, novacron.Errorf(novacron.EUnauthorized, "metrics need an admin token or the metrics token"))
		} else {
			writeError(w, r, novacron.Errorf(novacron.EForbidden, "metrics need an admin token or the metrics token"))
		}
		return
	}
	m := a.metrics
	m.handler.ServeHTTP(w, r)
}
