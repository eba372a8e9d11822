package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/server"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// serverFlags are the flags shared by `server` and the `admin` commands that
// open the server's database.
type serverFlags struct {
	dataDir    string
	db         string
	dbMaxConns int32
}

func (f *serverFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "./novacron-data", "directory of the SQLite database, secrets and local state")
	cmd.Flags().StringVar(&f.db, "db", "", "database: empty for SQLite in the data directory, postgres://… for PostgreSQL, or sqlite:PATH (env also NOVACRON_DB_URL, DB_URL)")
	cmd.Flags().Int32Var(&f.dbMaxConns, "db-max-conns", 25, "PostgreSQL connection pool size")
	aliasEnv(cmd, "db", "NOVACRON_DB_URL", "DB_URL")
	markSetting(cmd.Flags(), "data-dir", "db", "db-max-conns")
}

func newLogger(e *env, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	}
	return nil, usagef("--log-format must be json or text")
}

func newServerCmd(e *env) *cobra.Command {
	var (
		sf                  serverFlags
		cfg                 server.Config
		secretFile          string
		webhookSecretFile   string
		webhookAllow        []string
		cors, proxies       []string
		logLevel, logFormat string
		shutdownTimeout     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (all-in-one with no flags: SQLite in ./novacron-data, API on 127.0.0.1:8090)",
		Long: `Run the NovaCron control plane: the REST API, authentication, the audit log
and the database. With no flags it keeps everything in ./novacron-data (SQLite)
and listens on 127.0.0.1:8090. On first start it creates the tenant "default"
and the user "admin", with the password from NOVACRON_ADMIN_PASSWORD or a
generated one, written to DATA_DIR/admin-password (0600) and shown on the
terminal, never in the log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(e, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.DataDir, cfg.DB, cfg.DBMaxConns = sf.dataDir, sf.db, sf.dbMaxConns
			if secretFile != "" {
				if cfg.AuthSecret != "" {
					return usagef("--auth-secret and --auth-secret-file exclude each other")
				}
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return usagef("--auth-secret-file: %v", err)
				}
				cfg.AuthSecret = strings.TrimSpace(string(b))
			}
			// Refuse a bad configuration as a usage error (exit 2) before
			// anything is created in the data directory.
			if cfg.AuthSecret != "" && len(cfg.AuthSecret) < auth.MinSecretLen {
				return usagef("the auth secret must be at least %d bytes", auth.MinSecretLen)
			}
			if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			if cfg.GuestUIDMin < 1000 || cfg.GuestUIDMax < cfg.GuestUIDMin {
				return usagef("--guest-uid-min and --guest-uid-max: want 1000 <= min <= max, got %d-%d", cfg.GuestUIDMin, cfg.GuestUIDMax)
			}
			if cfg.ReconcileInterval <= 0 || cfg.StopTimeout <= 0 {
				return usagef("--reconcile-interval and --stop-timeout must be positive")
			}
			if cfg.MetricsInterval < time.Second || cfg.MetricsInterval > time.Hour {
				return usagef("--metrics-interval: want between 1s and 1h")
			}
			if cfg.MetricsRetention < time.Hour {
				return usagef("--metrics-retention: want at least 1h")
			}
			cfg.CORSOrigins = cors
			for _, p := range proxies {
				pfx, err := parsePrefix(p)
				if err != nil {
					return usagef("--trusted-proxies: %v", err)
				}
				cfg.TrustedProxies = append(cfg.TrustedProxies, pfx)
			}
			if webhookSecretFile != "" {
				if cfg.AlertWebhookSecret != "" {
					return usagef("--alert-webhook-secret and --alert-webhook-secret-file exclude each other")
				}
				b, err := os.ReadFile(webhookSecretFile)
				if err != nil {
					return usagef("--alert-webhook-secret-file: %v", err)
				}
				cfg.AlertWebhookSecret = strings.TrimSpace(string(b))
				if cfg.AlertWebhookSecret == "" {
					return usagef("--alert-webhook-secret-file: the file is empty")
				}
			}
			if cfg.AlertInterval <= 0 || cfg.AlertResolveAfter < 0 || cfg.AlertStaleAfter <= 0 {
				return usagef("--alert-interval and --alert-stale-after must be positive, --alert-resolve-after not negative")
			}
			for _, p := range webhookAllow {
				pfx, err := parsePrefix(p)
				if err != nil {
					return usagef("--alert-webhook-allow: %v", err)
				}
				cfg.AlertWebhookAllow = append(cfg.AlertWebhookAllow, pfx.Masked())
			}
			cfg.QEMUAccel = cmd.Flags().Lookup("qemu-accel").Value.String()
			if cfg.ConsoleLogMax < 4096 {
				return usagef("--console-log-max: want at least 4096 bytes")
			}
			if cfg.PortForwardMin < 1024 || cfg.PortForwardMax > 65535 || cfg.PortForwardMin > cfg.PortForwardMax {
				return usagef("--port-forward-min and --port-forward-max: want 1024 <= min <= max <= 65535")
			}
			cfg.AdminPassword = e.getenv("NOVACRON_ADMIN_PASSWORD")
			cfg.Logger = log
			if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				cfg.Terminal = e.stdout
			}
			srv, err := server.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if cfg.Terminal != nil {
				fmt.Fprintf(e.stdout, "NovaCron is serving on %s\n", srv.URL())
			}
			<-cmd.Context().Done()
			log.Info("shutting down", "timeout", shutdownTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := srv.Close(ctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			log.Info("stopped")
			return nil
		},
	}
	fl := cmd.Flags()
	sf.add(cmd)
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:8090", "address of the API")
	fl.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM)")
	fl.StringVar(&cfg.TLSKey, "tls-key", "", "private key `file` of --tls-cert (PEM)")
	fl.StringVar(&cfg.AuthSecret, "auth-secret", "", "JWT signing secret, at least 32 bytes; generated into the data directory when unset; replicas must share it (env also AUTH_SECRET)")
	aliasEnv(cmd, "auth-secret", "AUTH_SECRET")
	fl.StringVar(&secretFile, "auth-secret-file", "", "read the JWT signing secret from this `file`")
	fl.DurationVar(&cfg.SessionTTL, "session-ttl", 12*time.Hour, "lifetime of a login session")
	fl.BoolVar(&cfg.AllowRegistration, "allow-registration", false, "let anyone register an account (role user, tenant default)")
	fl.StringSliceVar(&cors, "cors-origins", nil, "browser origins allowed to call the API (comma-separated; none by default)")
	fl.StringSliceVar(&proxies, "trusted-proxies", nil, "addresses or CIDRs of proxies whose X-Forwarded-For is believed")
	fl.Float64Var(&cfg.RateLimitIP, "rate-limit-ip", 100, "requests per second per client address (burst twice that; 0: no limit)")
	fl.Float64Var(&cfg.RateLimitUser, "rate-limit-user", 50, "requests per second per user (burst twice that; 0: no limit)")
	fl.StringVar(&cfg.MetricsToken, "metrics-token", "", "bearer token that may read /metrics besides admins")
	fl.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics without authentication")
	fl.DurationVar(&cfg.AuditRetention, "audit-retention", 90*24*time.Hour, "how long audit entries are kept")
	fl.DurationVar(&cfg.MetricsInterval, "metrics-interval", 30*time.Second, "how often nodes sample the host and every VM (handed to agents)")
	fl.DurationVar(&cfg.MetricsRetention, "metrics-retention", 30*24*time.Hour, "how long metric samples are kept")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&logFormat, "log-format", "json", "json or text")
	fl.DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may finish after SIGTERM")
	fl.StringVar(&cfg.NodeName, "node-name", "", "name of the local node (default: the host name)")
	fl.IntVar(&cfg.GuestUIDMin, "guest-uid-min", 200000, "lowest unprivileged `uid` given to a process guest")
	fl.IntVar(&cfg.GuestUIDMax, "guest-uid-max", 265535, "highest unprivileged `uid` given to a process guest")
	fl.BoolVar(&cfg.AllowUserProcess, "allow-user-process", false, "let non-admins create process VMs, which run commands on the host")
	fl.DurationVar(&cfg.ReconcileInterval, "reconcile-interval", 2*time.Second, "how often what the node runs is compared with the database")
	fl.DurationVar(&cfg.StopTimeout, "stop-timeout", 30*time.Second, "how long a graceful stop waits before it kills, unless the request says")
	fl.Var(newEnumValue("auto", "auto", "kvm", "tcg"), "qemu-accel", "accelerator of qemu guests: auto (KVM when /dev/kvm works, else TCG), kvm or tcg; a VM's config.accel overrides it")
	fl.IntVar(&cfg.PortForwardMin, "port-forward-min", 20000, "lowest host port a qemu guest's port forward may use")
	fl.IntVar(&cfg.PortForwardMax, "port-forward-max", 29999, "highest host port a qemu guest's port forward may use")
	fl.StringVar(&cfg.PortForwardAddress, "port-forward-address", "127.0.0.1", "host address port forwards listen on")
	fl.Int64Var(&cfg.MaxImageSize, "max-image-size", 20<<30, "largest image upload in `bytes`")
	fl.BoolVar(&cfg.QEMUCopyBaseImage, "qemu-copy-base-image", false, "make a qemu guest's disk a full copy of its image instead of an overlay backed by it")
	fl.Int64Var(&cfg.ConsoleLogMax, "console-log-max", 1<<20, "cap of a qemu guest's console log in `bytes` (about twice this is kept)")
	fl.DurationVar(&cfg.AlertInterval, "alert-interval", 15*time.Second, "how often alert rules are evaluated besides when samples arrive (event conditions, resources that stopped reporting)")
	fl.DurationVar(&cfg.AlertResolveAfter, "alert-resolve-after", time.Minute, "how long an alert's condition must stay clear before it resolves")
	fl.DurationVar(&cfg.AlertStaleAfter, "alert-stale-after", 3*time.Minute, "how long a resource may send no samples before its metric alerts resolve")
	fl.StringVar(&cfg.AlertWebhookSecret, "alert-webhook-secret", "", "key of the HMAC-SHA256 signature of webhook calls; generated into the data directory when unset")
	fl.StringVar(&webhookSecretFile, "alert-webhook-secret-file", "", "read the webhook signing key from this `file`")
	fl.StringSliceVar(&webhookAllow, "alert-webhook-allow", nil, "addresses or CIDRs of loopback, private or link-local networks webhooks may call (refused by default)")
	return markSettings(cmd)
}

// parsePrefix reads a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
