package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/novacron/novacron"
)

// Config configures the authentication service.
type Config struct {
	// Secret signs session JWTs (at least MinSecretLen bytes).
	Secret []byte
	// SessionTTL is the lifetime of a login session (default 12h).
	SessionTTL time.Duration
	// MaxTokenTTL bounds personal API tokens (default one year).
	MaxTokenTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service authenticates callers against the store.
type Service struct {
	store  novacron.Store
	signer *Signer
	cfg    Config
	log    *slog.Logger
}

// NewService returns the authentication service.
func NewService(store novacron.Store, cfg Config, log *slog.Logger) (*Service, error) {
	signer, err := NewSigner(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.MaxTokenTTL <= 0 {
		cfg.MaxTokenTTL = 365 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{store: store, signer: signer, cfg: cfg, log: log}, nil
}

// Client describes where a request comes from, for the session record.
type Client struct {
	IP        string
	UserAgent string
}

// LoginResult is a new login session.
type LoginResult struct {
	Token     string
	ExpiresAt time.Time
	User      *novacron.User
}

// Login checks a username and password and opens a session. A wrong user
// and a wrong password give the same EUnauthorized error, after the same
// amount of work.
func (s *Service) Login(ctx context.Context, username, password string, c Client) (*LoginResult, error) {
	u, err := s.store.GetUserByUsername(ctx, username)
	if err != nil && !novacron.IsCode(err, novacron.ENotFound) {
		return nil, err
	}
	if u == nil {
		CheckPassword(dummyHash(), password)
		return nil, novacron.Errorf(novacron.EUnauthorized, "invalid username or password")
	}
	if !CheckPassword(u.PasswordHash, password) {
		return nil, novacron.Errorf(novacron.EUnauthorized, "invalid username or password")
	}
	now := s.cfg.Now().UTC()
	sess := &novacron.Session{
		UserID:    u.ID,
		Kind:      novacron.SessionLogin,
		IP:        c.IP,
		UserAgent: truncate(c.UserAgent, 256),
		ExpiresAt: now.Add(s.cfg.SessionTTL),
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	tok, err := s.signer.Sign(sess.ID, u.ID, now, sess.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("auth: sign: %w", err)
	}
	return &LoginResult{Token: tok, ExpiresAt: sess.ExpiresAt, User: u}, nil
}

var errBadCredential = novacron.Errorf(novacron.EUnauthorized, "invalid or expired credential")

// Authenticate resolves a bearer credential (a session JWT or a personal API
// token) to its actor. The session row is read on every call, so logout and
// revocation take effect at once.
func (s *Service) Authenticate(ctx context.Context, bearer string) (*novacron.Actor, error) {
	now := s.cfg.Now()
	var sess *novacron.Session
	var err error
	if IsAPIToken(bearer) {
		sess, err = s.store.GetSessionByTokenHash(ctx, HashAPIToken(bearer))
	} else {
		var sid, uid string
		sid, uid, err = s.signer.Verify(bearer, now)
		if err != nil {
			return nil, errBadCredential
		}
		sess, err = s.store.GetSession(ctx, sid)
		if err == nil && sess.UserID != uid {
			return nil, errBadCredential
		}
	}
	if err != nil {
		if novacron.IsCode(err, novacron.ENotFound) {
			return nil, errBadCredential
		}
		return nil, err
	}
	if !sess.Active(now) {
		return nil, errBadCredential
	}
	u, err := s.store.GetUser(ctx, novacron.AllTenants, sess.UserID)
	if err != nil {
		if novacron.IsCode(err, novacron.ENotFound) {
			return nil, errBadCredential
		}
		return nil, err
	}
	return &novacron.Actor{UserID: u.ID, Username: u.Username, TenantID: u.TenantID, Role: u.Role,
		SessionID: sess.ID, Kind: sess.Kind}, nil
}

// Logout revokes the session the actor is using.
func (s *Service) Logout(ctx context.Context, a *novacron.Actor) error {
	return s.store.RevokeSession(ctx, a.UserID, a.SessionID)
}

// NewToken creates a personal API token for the actor. ttl 0 means the
// longest allowed lifetime.
func (s *Service) NewToken(ctx context.Context, a *novacron.Actor, name string, ttl time.Duration, c Client) (*novacron.Session, string, error) {
	if ttl < 0 || ttl > s.cfg.MaxTokenTTL {
		return nil, "", novacron.FieldError("expires_in", "must be between 1m and %s", s.cfg.MaxTokenTTL)
	}
	if ttl == 0 {
		ttl = s.cfg.MaxTokenTTL
	}
	if ttl < time.Minute {
		return nil, "", novacron.FieldError("expires_in", "must be between 1m and %s", s.cfg.MaxTokenTTL)
	}
	token, hash := NewAPIToken()
	sess := &novacron.Session{
		UserID:    a.UserID,
		Kind:      novacron.SessionToken,
		Name:      name,
		TokenHash: hash,
		IP:        c.IP,
		UserAgent: truncate(c.UserAgent, 256),
		ExpiresAt: s.cfg.Now().UTC().Add(ttl),
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, "", err
	}
	return sess, token, nil
}

// SetPassword hashes and stores a new password for a user and revokes every
// session and token of the user. It returns how many it revoked.
func SetPassword(ctx context.Context, store novacron.Store, scope novacron.Scope, u *novacron.User, password string) (int64, error) {
	h, err := HashPassword(password)
	if err != nil {
		return 0, err
	}
	u.PasswordHash = h
	if err := store.UpdateUser(ctx, scope, u); err != nil {
		return 0, err
	}
	return store.RevokeUserSessions(ctx, u.ID)
}

// Bootstrap makes sure the default tenant exists and, when there is no user
// at all, creates the first admin with password (generated when empty). It
// returns the password it set, or "" when users already existed.
func Bootstrap(ctx context.Context, store novacron.Store, password string) (string, error) {
	t, err := store.GetTenantByName(ctx, novacron.DefaultTenantName)
	if novacron.IsCode(err, novacron.ENotFound) {
		t = &novacron.Tenant{Name: novacron.DefaultTenantName}
		err = store.CreateTenant(ctx, t)
		if novacron.IsCode(err, novacron.EConflict) {
			// Another replica created it meanwhile.
			t, err = store.GetTenantByName(ctx, novacron.DefaultTenantName)
		}
	}
	if err != nil {
		return "", fmt.Errorf("bootstrap: default tenant: %w", err)
	}
	n, err := store.CountUsers(ctx)
	if err != nil {
		return "", fmt.Errorf("bootstrap: count users: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	if password == "" {
		password = GeneratePassword()
	}
	h, err := HashPassword(password)
	if err != nil {
		return "", fmt.Errorf("bootstrap: admin password: %w", err)
	}
	err = store.CreateUser(ctx, &novacron.User{Username: "admin", Email: "admin@localhost",
		Role: novacron.RoleAdmin, TenantID: t.ID, PasswordHash: h})
	if novacron.IsCode(err, novacron.EConflict) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("bootstrap: create admin: %w", err)
	}
	return password, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
