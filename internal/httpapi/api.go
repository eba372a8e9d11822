// Package httpapi is NovaCron's REST API: the route table with each route's
// permission, the handlers, the middleware (request ids, logs, security
// headers, CORS, rate limits, authentication, audit) and the one place where
// error codes become HTTP statuses.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/alert"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/images"
	"github.com/novacron/novacron/internal/monitor"
	"github.com/novacron/novacron/internal/vm"
	"github.com/prometheus/client_golang/prometheus"
)

// APIVersion is the version of the REST contract.
const APIVersion = "1"

// Config configures the API. The zero value is valid and strict.
type Config struct {
	Version           string
	AllowRegistration bool
	// CORSOrigins is the allow-list of browser origins; empty allows none.
	CORSOrigins []string
	// TrustedProxies may set X-Forwarded-For.
	TrustedProxies []netip.Prefix
	// RateLimitIP and RateLimitUser are requests per second (0: no limit).
	RateLimitIP   float64
	RateLimitUser float64
	// LoginConcurrency bounds password checks running at once (default: cores).
	LoginConcurrency int
	MetricsToken     string
	MetricsPublic    bool
	TLS              bool
	// Drivers and Features are reported by /api/info.
	Drivers  []string
	Features []string
	// OpenAPI is the document served at /api/openapi.json.
	OpenAPI []byte
	// Images keeps uploaded images; without it the image routes answer 503.
	Images *images.Store
	// Alerts serves the alert rules and alerts; without it their routes
	// answer 503.
	Alerts *alert.Engine
	// Metrics keeps the samples of VMs and hosts; without it the metrics
	// routes answer 503.
	Metrics *monitor.Service
	// UploadTimeout bounds reading an upload's body (default 4h), in place
	// of the server's read timeout.
	UploadTimeout time.Duration
	// Events is the bus WS /ws/monitoring streams; without it the route
	// answers 503.
	Events *events.Bus
	// WSPingInterval is how often the monitoring stream pings its clients
	// (default 30s); one that answers no ping within half of it is dropped.
	WSPingInterval time.Duration
	// VMMetrics, when set, gives /metrics the latest sample of every VM.
	VMMetrics VMMetricsSource
	// AlertCounts, when set, gives /metrics the number of alerts by status.
	AlertCounts AlertCounter
}

// API serves the REST API.
type API struct {
	cfg   Config
	store Store
	auth  *auth.Service
	vms   *vm.Service
	log   *slog.Logger
	now   func() time.Time

	ipLimit, userLimit *keyedLimiter
	loginBackoff       *auth.Backoff
	loginSlots         chan struct{}
	loginQueue         chan struct{}

	metrics *metrics
	streams *streams
	mux     *http.ServeMux
	routes  []route
}

// Store is what the API reads directly: accounts, audit, operations,
// nodes, and the count of VMs by state for /metrics.
type Store interface {
	novacron.Store
	novacron.VMStore
	novacron.VMCounter
}

// New returns the API over a store, the authentication service and the VM
// service.
func New(cfg Config, store Store, authn *auth.Service, vms *vm.Service, log *slog.Logger) *API {
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = 4 * time.Hour
	}
	if cfg.LoginConcurrency <= 0 {
		cfg.LoginConcurrency = runtime.NumCPU()
	}
	a := &API{
		cfg:          cfg,
		store:        store,
		auth:         authn,
		vms:          vms,
		log:          log,
		now:          time.Now,
		ipLimit:      newKeyedLimiter(cfg.RateLimitIP),
		userLimit:    newKeyedLimiter(cfg.RateLimitUser),
		loginBackoff: auth.NewBackoff(),
		loginSlots:   make(chan struct{}, cfg.LoginConcurrency),
		loginQueue:   make(chan struct{}, 8*cfg.LoginConcurrency),
		metrics:      newMetrics(),
		streams:      newStreams(),
	}
	a.metrics.reg.MustRegister(&fleetCollector{a: a, log: log})
	a.routes = a.routeTable()
	a.mux = a.buildMux()
	return a
}

// Handler returns the root handler.
func (a *API) Handler() http.Handler { return a.outer(a.mux) }

// Registry returns the Prometheus registry behind /metrics, for other
// components to register their collectors.
func (a *API) Registry() *prometheus.Registry { return a.metrics.reg }

// Routes lists the method and path pattern of every registered route.
func (a *API) Routes() []RouteInfo {
	out := make([]RouteInfo, len(a.routes))
	for i, r := range a.routes {
		out[i] = RouteInfo{Method: r.method, Path: r.path, Policy: r.policy, Action: r.action, WebSocket: r.ws != nil}
	}
	return out
}

// RouteInfo describes one route.
type RouteInfo struct {
	Method, Path string
	Policy       auth.Policy
	Action       string
	// WebSocket routes answer an upgrade request (101).
	WebSocket bool
}

func (a *API) pingInterval() time.Duration {
	if a.cfg.WSPingInterval > 0 {
		return a.cfg.WSPingInterval
	}
	return 30 * time.Second
}

func (a *API) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}
