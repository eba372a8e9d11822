package novacron

import (
	"context"
	"time"
)

// Role is a user's role. Roles are ordered: admin > operator > user.
type Role string

// The roles.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleUser     Role = "user"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleOperator || r == RoleUser }

// DefaultTenantName is the tenant that the first admin and registered users join.
const DefaultTenantName = "default"

// User is a person or automation account. The password hash never leaves the
// server: it has no JSON name.
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	Role         Role      `json:"role"`
	TenantID     string    `json:"tenant_id"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Quotas limit what a tenant may hold. A nil field means no limit.
type Quotas struct {
	VMs      *int64 `json:"vms"`
	VCPUs    *int64 `json:"vcpus"`
	MemoryMB *int64 `json:"memory_mb"`
	DiskGB   *int64 `json:"disk_gb"`
	ImagesGB *int64 `json:"images_gb"`
}

// Tenant isolates users and every resource they own.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Quotas    Quotas    `json:"quotas"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SessionKind tells a login session from a personal API token.
type SessionKind string

// Session kinds.
const (
	SessionLogin SessionKind = "login"
	SessionToken SessionKind = "token"
)

// Session is the server-side record behind every credential: a login (whose
// JWT carries the session id) or a personal API token (looked up by the
// SHA-256 of its secret). Deleting or revoking the row ends the credential at
// once.
type Session struct {
	ID        string      `json:"id"`
	UserID    string      `json:"user_id"`
	Kind      SessionKind `json:"kind"`
	Name      string      `json:"name,omitempty"`
	TokenHash string      `json:"-"`
	IP        string      `json:"ip,omitempty"`
	UserAgent string      `json:"user_agent,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	ExpiresAt time.Time   `json:"expires_at"`
	RevokedAt *time.Time  `json:"revoked_at,omitempty"`
}

// Active reports whether the session can still authenticate at now.
func (s *Session) Active(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// AuditEntry records one mutating request or login attempt.
type AuditEntry struct {
	ID         string    `json:"id"`
	TS         time.Time `json:"ts"`
	UserID     string    `json:"user_id"`
	Username   string    `json:"username"`
	TenantID   string    `json:"tenant_id"`
	Action     string    `json:"action"`
	Resource   string    `json:"resource"`
	ResourceID string    `json:"resource_id"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Success    bool      `json:"success"`
	Error      string    `json:"error"`
	RequestID  string    `json:"request_id"`
}

// Scope limits a store query to the rows a caller may see. The zero Scope
// (no tenant) sees every tenant and is only built for admins and the system.
type Scope struct {
	TenantID string
}

// AllTenants is the scope of admins and of the server itself.
var AllTenants = Scope{}

// TenantScope returns the scope of one tenant.
func TenantScope(id string) Scope { return Scope{TenantID: id} }

// Page asks for one page of a list: at most Limit items after the opaque
// Cursor returned with the previous page.
type Page struct {
	Limit  int
	Cursor string
}

// UserFilter selects users. Role and Username, when set, match exactly.
type UserFilter struct {
	Page
	Role     Role
	Username string
}

// AuditFilter selects audit entries. Zero fields do not filter; UserID,
// Action and Resource match exactly; From is inclusive and To exclusive.
type AuditFilter struct {
	Page
	UserID   string
	Action   string
	Resource string
	From, To time.Time
}

// Store is the persistence of the control plane. Both implementations
// (sqlite and postgres) pass the same conformance suite.
//
// Every method that loads tenant-owned rows takes the caller's Scope and
// returns ENotFound for rows outside it, as for rows that do not exist or
// ids that are malformed. Unique violations are EConflict. Lists return
// the items and the cursor of the next page ("" on the last page).
type Store interface {
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error

	CreateTenant(ctx context.Context, t *Tenant) error
	GetTenant(ctx context.Context, scope Scope, id string) (*Tenant, error)
	GetTenantByName(ctx context.Context, name string) (*Tenant, error)
	ListTenants(ctx context.Context, scope Scope, page Page) ([]*Tenant, string, error)
	// UpdateTenant writes Name and Quotas.
	UpdateTenant(ctx context.Context, t *Tenant) error
	// DeleteTenant fails with EConflict while the tenant still owns users or resources.
	DeleteTenant(ctx context.Context, id string) error

	// CreateUser is EInvalid for a bad role or a missing tenant and
	// EConflict for a taken username.
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, scope Scope, id string) (*User, error)
	// GetUserByUsername is unscoped: it serves login.
	GetUserByUsername(ctx context.Context, username string) (*User, error)
	ListUsers(ctx context.Context, scope Scope, f UserFilter) ([]*User, string, error)
	// UpdateUser writes Email, Role, TenantID and PasswordHash and reloads u
	// from the row. A tenant scope cannot move a user out (EForbidden).
	UpdateUser(ctx context.Context, scope Scope, u *User) error
	// DeleteUser deletes the user and every session of the user.
	DeleteUser(ctx context.Context, scope Scope, id string) error
	CountUsers(ctx context.Context) (int, error)

	// CreateSession is ENotFound when the user does not exist.
	CreateSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, id string) (*Session, error)
	GetSessionByTokenHash(ctx context.Context, hash string) (*Session, error)
	// ListSessions lists a user's sessions of one kind (every kind for ""),
	// newest first, leaving out revoked and expired ones.
	ListSessions(ctx context.Context, userID string, kind SessionKind, page Page) ([]*Session, string, error)
	// RevokeSession revokes one session of the user; ENotFound when the user has no such session.
	RevokeSession(ctx context.Context, userID, id string) error
	// RevokeUserSessions revokes every session of a user and returns how many.
	RevokeUserSessions(ctx context.Context, userID string) (int64, error)
	// PruneSessions deletes sessions that expired or were revoked before t.
	PruneSessions(ctx context.Context, before time.Time) (int64, error)

	InsertAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit lists entries newest first. A malformed UserID is EInvalid.
	ListAudit(ctx context.Context, scope Scope, f AuditFilter) ([]*AuditEntry, string, error)
	PruneAudit(ctx context.Context, before time.Time) (int64, error)

	// GetSetting returns a server-wide setting, ENotFound when unset.
	GetSetting(ctx context.Context, key string) (string, error)
	// SetSettingIfAbsent stores value when key is unset and returns the value now stored.
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)
}
