// Package server is the composition root of the NovaCron control plane: it
// opens the store, loads the secrets, creates the first admin, builds the
// API and serves it. Nothing else wires components together.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/agent"
	"github.com/novacron/novacron/internal/alert"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/container"
	"github.com/novacron/novacron/internal/driver/process"
	"github.com/novacron/novacron/internal/driver/qemu"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/httpapi"
	"github.com/novacron/novacron/internal/images"
	"github.com/novacron/novacron/internal/monitor"
	"github.com/novacron/novacron/internal/store/postgres"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/vm"
)

// Version is the version of this build, set by the linker.
var Version = "dev"

// Config is the control plane's configuration, parsed once by the CLI.
type Config struct {
	DataDir string
	// DB is empty for SQLite in DataDir, a postgres:// URL, or sqlite:PATH.
	DB            string
	DBMaxConns    int32
	Listen        string
	TLSCert       string
	TLSKey        string
	AuthSecret    string
	SessionTTL    time.Duration
	AdminPassword string

	AllowRegistration bool
	CORSOrigins       []string
	TrustedProxies    []netip.Prefix
	RateLimitIP       float64
	RateLimitUser     float64
	MetricsToken      string
	MetricsPublic     bool
	AuditRetention    time.Duration
	// MetricsInterval is how often agents sample the host and its VMs
	// (default 30s); MetricsRetention how long samples are kept (default
	// 30 days).
	MetricsInterval  time.Duration
	MetricsRetention time.Duration
	// PruneInterval is how often retention runs (default 1h).
	PruneInterval time.Duration

	// The local node agent of the all-in-one server.
	NodeName                 string
	GuestUIDMin, GuestUIDMax int
	// AllowUserProcess lets non-admins create process VMs.
	AllowUserProcess  bool
	ReconcileInterval time.Duration
	StopTimeout       time.Duration
	// QEMUAccel is the node's accelerator: auto, kvm or tcg.
	QEMUAccel string
	// Port forwards of qemu guests: host ports in [PortForwardMin,
	// PortForwardMax], bound to PortForwardAddress (default 127.0.0.1).
	PortForwardMin, PortForwardMax int
	PortForwardAddress             string
	// QEMUCopyBaseImage makes a qemu guest's disk a full copy of its
	// image instead of an overlay backed by the image in the cache.
	QEMUCopyBaseImage bool
	// ConsoleLogMax caps a qemu guest's console log (default 1 MiB).
	ConsoleLogMax int64
	// ShimCommand runs the guest supervisor (default: this binary, "shim").
	ShimCommand []string
	// Drivers, when set, replaces the node's drivers (tests).
	Drivers []driver.Driver
	// MaxImageSize bounds an image upload in bytes (default 20 GiB).
	MaxImageSize int64
	// WSPingInterval is how often WS /ws/monitoring pings its clients
	// (default 30s).
	WSPingInterval time.Duration

	// AlertInterval is how often alert rules are evaluated without samples
	// (default 15s); AlertResolveAfter how long a condition stays clear
	// before its alert resolves (default 1m); AlertStaleAfter how long a
	// resource may send no samples before its metric alerts resolve
	// (default 3m).
	AlertInterval     time.Duration
	AlertResolveAfter time.Duration
	AlertStaleAfter   time.Duration
	// AlertWebhookSecret signs webhook calls; generated into the data
	// directory when empty.
	AlertWebhookSecret string
	// AlertWebhookAllow are internal addresses webhooks may call.
	AlertWebhookAllow []netip.Prefix

	Logger *slog.Logger
	// Terminal, when set, is where a generated admin password is shown. It
	// is never the log.
	Terminal io.Writer
}

// Server is a running control plane.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store Store
	agent *agent.Agent
	vms   *vm.Service
	// node is the local node's id.
	node string
	// bus is the control plane's one event bus: what happens is published
	// on it, and WS /ws/monitoring streams it.
	bus     *events.Bus
	alert   *alert.Engine
	metrics *monitor.Service
	// stopCollect ends the local agent's metrics collection.
	stopCollect context.CancelFunc
	api         *httpapi.API
	http        *http.Server
	ln          net.Listener

	stop chan struct{}
	wg   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open starts a control plane: on return it is serving on Addr.
func Open(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "novacron-data"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8090"
	}
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = 90 * 24 * time.Hour
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Hour
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), bus: events.NewBus()}
	defer func() {
		if err == nil {
			return
		}
		if s.stopCollect != nil {
			s.stopCollect()
			s.wg.Wait()
		}
		if s.metrics != nil {
			s.metrics.Close()
		}
		if s.alert != nil {
			s.alert.Close()
		}
		if s.vms != nil {
			s.vms.Close()
		}
		if s.store != nil {
			s.store.Close()
		}
	}()

	if s.store, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	secret, err := s.authSecret(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}
	authn, err := auth.NewService(s.store, auth.Config{Secret: secret, SessionTTL: cfg.SessionTTL}, cfg.Logger.With("component", "auth"))
	if err != nil {
		return nil, err
	}
	imgs, err := images.New(images.Config{Dir: filepath.Join(cfg.DataDir, "images"), MaxSize: cfg.MaxImageSize,
		Logger: cfg.Logger.With("component", "images")}, s.store)
	if err != nil {
		return nil, err
	}
	if err := s.openNode(ctx, imgs); err != nil {
		return nil, err
	}
	if err := s.openAlerts(ctx); err != nil {
		return nil, err
	}
	s.openMetrics()
	s.metrics.OnIngest(s.alert.Observe)
	s.api = httpapi.New(httpapi.Config{
		Version:           Version,
		AllowRegistration: cfg.AllowRegistration,
		CORSOrigins:       cfg.CORSOrigins,
		TrustedProxies:    cfg.TrustedProxies,
		RateLimitIP:       cfg.RateLimitIP,
		RateLimitUser:     cfg.RateLimitUser,
		MetricsToken:      cfg.MetricsToken,
		MetricsPublic:     cfg.MetricsPublic,
		TLS:               cfg.TLSCert != "",
		Features:          []string{"auth", "tenants", "audit", "vms", "operations", "images", "metrics", "alerts", "events"},
		Drivers:           s.vms.Drivers(),
		OpenAPI:           api.OpenAPI,
		Images:            imgs,
		Alerts:            s.alert,
		AlertCounts:       s.alert,
		Metrics:           s.metrics,
		VMMetrics:         s.metrics,
		Events:            s.bus,
		WSPingInterval:    cfg.WSPingInterval,
	}, s.store, authn, s.vms, cfg.Logger.With("component", "http"))

	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s.http = &http.Server{
		Handler:           s.api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			s.ln.Close()
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		s.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		s.ln = tls.NewListener(s.ln, s.http.TLSConfig)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.retention()
	}()
	s.log.Info("novacron server started", "listen", s.ln.Addr().String(), "tls", cfg.TLSCert != "",
		"database", storeKind(cfg.DB), "data_dir", cfg.DataDir, "version", Version)
	return s, nil
}

// openNode starts the in-process node agent with its drivers and registers
// it with the VM service.
func (s *Server) openNode(ctx context.Context, imgs *images.Store) error {
	dir := filepath.Join(s.cfg.DataDir, "agent")
	drivers := s.cfg.Drivers
	if drivers == nil {
		pd, err := process.New(process.Config{Dir: filepath.Join(dir, "process"), ShimCommand: s.cfg.ShimCommand,
			Logger: s.log})
		if err != nil {
			s.log.Warn("the process driver is unavailable", "err", err)
		} else {
			drivers = append(drivers, pd)
		}
		if _, err := exec.LookPath("runc"); err != nil {
			s.log.Warn("the container driver is unavailable: no runc")
		} else if cd, err := container.New(container.Config{Dir: filepath.Join(dir, "container"), ShimCommand: s.cfg.ShimCommand,
			Logger: s.log}); err != nil {
			s.log.Warn("the container driver is unavailable", "err", err)
		} else {
			drivers = append(drivers, cd)
		}
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			s.log.Warn("the qemu driver is unavailable: no qemu-system-x86_64")
		} else if qd, err := qemu.New(qemu.Config{Dir: filepath.Join(dir, "qemu"), Accel: s.cfg.QEMUAccel,
			PortMin: s.cfg.PortForwardMin, PortMax: s.cfg.PortForwardMax, ForwardAddress: s.cfg.PortForwardAddress,
			CopyBaseImage: s.cfg.QEMUCopyBaseImage, ConsoleLogMax: s.cfg.ConsoleLogMax,
			Logger: s.log}); err != nil {
			s.log.Warn("the qemu driver is unavailable", "err", err)
		} else {
			drivers = append(drivers, qd)
		}
	}
	ag, err := agent.New(agent.Config{Dir: dir, NodeName: s.cfg.NodeName, UIDMin: s.cfg.GuestUIDMin,
		UIDMax: s.cfg.GuestUIDMax, Drivers: drivers, Images: imageSource{imgs}, Logger: s.log.With("component", "agent")})
	if err != nil {
		return err
	}
	s.agent = ag
	s.vms = vm.New(s.store, vm.Config{AllowUserProcess: s.cfg.AllowUserProcess, StopTimeout: s.cfg.StopTimeout,
		ReconcileInterval: s.cfg.ReconcileInterval, Events: s.bus}, s.log.With("component", "vm"))
	node, err := s.vms.AddNode(ctx, ag, "local")
	if err != nil {
		s.vms.Close()
		return fmt.Errorf("local node: %w", err)
	}
	s.node = node.ID
	return nil
}

// openAlerts starts the alert engine with the webhook secret from the
// configuration or generated into the data directory.
func (s *Server) openAlerts(ctx context.Context) error {
	secret := []byte(s.cfg.AlertWebhookSecret)
	if len(secret) == 0 {
		var err error
		if secret, err = readOrCreateSecret(filepath.Join(s.cfg.DataDir, "alert-webhook-secret")); err != nil {
			return fmt.Errorf("alert webhook secret: %w", err)
		}
	}
	s.alert = alert.New(s.store, alert.Config{
		Interval:      s.cfg.AlertInterval,
		ResolveAfter:  s.cfg.AlertResolveAfter,
		StaleAfter:    s.cfg.AlertStaleAfter,
		WebhookSecret: secret,
		WebhookAllow:  s.cfg.AlertWebhookAllow,
	}, s.bus, s.log.With("component", "alert"))
	if err := s.alert.Start(ctx); err != nil {
		s.alert = nil
		return err
	}
	return nil
}

// readOrCreateSecret reads a secret file of the data directory, or
// creates it (0600) with 32 random bytes in hex.
func readOrCreateSecret(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if s := strings.TrimSpace(string(b)); s != "" {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%s is empty", filepath.Base(p))
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	secret := []byte(hex.EncodeToString(raw[:]))
	if err := writeSecretFile(p, secret); err != nil {
		return nil, err
	}
	return secret, nil
}

// openMetrics starts the metrics service and the local agent's collection,
// which pushes a round of samples every interval.
func (s *Server) openMetrics() {
	s.metrics = monitor.New(s.store, monitor.Config{Interval: s.cfg.MetricsInterval, Retention: s.cfg.MetricsRetention,
		Bus: s.bus, Logger: s.log.With("component", "metrics")})
	ctx, cancel := context.WithCancel(context.Background())
	s.stopCollect = cancel
	s.wg.Go(func() {
		s.agent.CollectMetrics(ctx, s.metrics.Interval(), func(ctx context.Context, host *novacron.HostPoint, vms []novacron.VMSample) {
			if err := s.metrics.Ingest(ctx, monitor.Batch{NodeID: s.node, Host: host, VMs: vms}); err != nil {
				s.log.Warn("metrics of the local node dropped", "err", err)
			}
		})
	})
}

// imageSource serves the in-process agent the image store's files.
type imageSource struct{ st *images.Store }

func (i imageSource) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	rc, _, err := i.st.Open(ctx, id)
	return rc, err
}

// Store is the database of the control plane.
type Store interface {
	novacron.Store
	novacron.VMStore
	novacron.ImageStore
	novacron.AlertStore
	novacron.MetricsStore
	novacron.VMCounter
}

func storeKind(db string) string {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

func openStore(ctx context.Context, cfg Config) (Store, error) {
	var (
		st  Store
		err error
	)
	switch {
	case cfg.DB == "":
		st, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "novacron.db"))
	case storeKind(cfg.DB) == "postgres":
		st, err = postgres.Open(ctx, cfg.DB, cfg.DBMaxConns)
	case strings.HasPrefix(cfg.DB, "sqlite:"):
		st, err = sqlite.Open(ctx, strings.TrimPrefix(strings.TrimPrefix(cfg.DB, "sqlite:"), "//"))
	default:
		return nil, errors.New("--db must be a postgres:// URL or sqlite:PATH")
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// authSecret returns the JWT signing secret: from the configuration, or
// generated into the data directory. Its fingerprint is recorded in the
// database so that replicas with different secrets refuse to start.
func (s *Server) authSecret(ctx context.Context) ([]byte, error) {
	secret := []byte(s.cfg.AuthSecret)
	if len(secret) == 0 {
		p := filepath.Join(s.cfg.DataDir, "jwt-secret")
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			secret = []byte(strings.TrimSpace(string(b)))
		case errors.Is(err, os.ErrNotExist):
			var raw [32]byte
			if _, err := rand.Read(raw[:]); err != nil {
				return nil, err
			}
			secret = []byte(hex.EncodeToString(raw[:]))
			if err := writeSecretFile(p, secret); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("read JWT secret: %w", err)
		}
	}
	if len(secret) < auth.MinSecretLen {
		return nil, fmt.Errorf("the auth secret must be at least %d bytes", auth.MinSecretLen)
	}
	sum := sha256.Sum256(secret)
	fp := hex.EncodeToString(sum[:])
	stored, err := s.store.SetSettingIfAbsent(ctx, "auth_secret_sha256", fp)
	if err != nil {
		return nil, fmt.Errorf("record secret fingerprint: %w", err)
	}
	if stored != fp {
		return nil, errors.New("the auth secret differs from the one this database was first used with; every replica must use the same --auth-secret")
	}
	return secret, nil
}

func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// bootstrap creates the default tenant and the first admin. A generated
// password goes to a 0600 file and to the terminal, never to the log.
func (s *Server) bootstrap(ctx context.Context) error {
	pw, err := auth.Bootstrap(ctx, s.store, s.cfg.AdminPassword)
	if err != nil || pw == "" {
		return err
	}
	if s.cfg.AdminPassword != "" {
		s.log.Info("created the first admin with the password from NOVACRON_ADMIN_PASSWORD", "user", "admin")
		return nil
	}
	p := filepath.Join(s.cfg.DataDir, "admin-password")
	_ = os.Remove(p)
	if err := writeSecretFile(p, []byte(pw)); err != nil {
		return err
	}
	s.log.Info("created the first admin with a generated password", "user", "admin", "password_file", p)
	if s.cfg.Terminal != nil {
		fmt.Fprintf(s.cfg.Terminal, "\nNovaCron created the first admin.\n  user:     admin\n  password: %s\n(also in %s, readable by this user only)\n\n", pw, p)
	}
	return nil
}

// retention prunes old audit entries and dead sessions, now and then every
// PruneInterval.
func (s *Server) retention() {
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		now := time.Now()
		if n, err := s.store.PruneAudit(ctx, now.Add(-s.cfg.AuditRetention)); err != nil {
			s.log.Error("prune audit log", "err", err)
		} else if n > 0 {
			s.log.Info("pruned audit log", "entries", n)
		}
		if _, err := s.store.PruneSessions(ctx, now.Add(-24*time.Hour)); err != nil {
			s.log.Error("prune sessions", "err", err)
		}
		if n, err := s.metrics.Prune(ctx); err != nil {
			s.log.Error("prune metrics", "err", err)
		} else if n > 0 {
			s.log.Info("pruned metrics", "chunks", n)
		}
		cancel()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the API.
func (s *Server) URL() string {
	if s.cfg.TLSCert != "" {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Config returns the configuration the server runs with.
func (s *Server) Config() Config { return s.cfg }

// Store returns the server's store, for tests and admin commands.
func (s *Server) Store() Store { return s.store }

// Agent returns the in-process node agent.
func (s *Server) Agent() *agent.Agent { return s.agent }

// Alerts returns the alert engine: it observes the metrics service's
// samples, /metrics reads its Counts.
func (s *Server) Alerts() *alert.Engine { return s.alert }

// Metrics returns the metrics service: the alert engine observes it
// (OnIngest), the Prometheus gauges read its Latest.
func (s *Server) Metrics() *monitor.Service { return s.metrics }

// Events returns the server's event bus, for components that publish on it
// and for tests.
func (s *Server) Events() *events.Bus { return s.bus }

// API returns the server's API.
func (s *Server) API() *httpapi.API { return s.api }

// Close stops accepting requests, lets those in flight finish until ctx
// ends, stops the background loops and closes the store.
// Guests keep running: they outlive the control plane. Closing twice is a
// no-op.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		err := s.http.Shutdown(ctx)
		// Hijacked connections (consoles) are not Shutdown's: close them
		// and wait, before the services they use go.
		if werr := s.api.Shutdown(ctx); err == nil {
			err = werr
		}
		close(s.stop)
		s.stopCollect()
		s.wg.Wait()
		s.metrics.Close()
		s.alert.Close()
		s.vms.Close()
		if cerr := s.store.Close(); err == nil {
			err = cerr
		}
		s.closeErr = err
	})
	return s.closeErr
}

// OpenStore opens the configured store without serving, for admin commands.
func OpenStore(ctx context.Context, cfg Config) (Store, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "novacron-data"
	}
	return openStore(ctx, cfg)
}
