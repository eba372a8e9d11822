package api

import (
	"time"

	"github.com/novacron/novacron"
)

// List is one page of a list answer. NextCursor is empty on the last page;
// otherwise pass it as the Cursor of the next request.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// ListOptions asks for one page of a list: at most Limit items (0: the
// server's default of 50, at most 500) after Cursor.
type ListOptions struct {
	Limit  int
	Cursor string
}

// UserFilter selects users in ListUsers. Empty fields do not filter.
type UserFilter struct {
	Username string
	Role     novacron.Role
	TenantID string
	Limit    int
	Cursor   string
}

// AuditFilter selects audit entries in ListAudit. From and To take RFC 3339
// times or relative durations ("-1h"); empty fields do not filter.
type AuditFilter struct {
	UserID   string
	Action   string
	Resource string
	From, To string
	Limit    int
	Cursor   string
}

// LoginRequest is the body of POST /auth/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginResponse is the answer of POST /auth/login.
type LoginResponse struct {
	Token     string        `json:"token"`
	ExpiresAt time.Time     `json:"expires_at"`
	User      novacron.User `json:"user"`
}

// RegisterRequest is the body of POST /auth/register.
type RegisterRequest struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// CreateTokenRequest is the body of POST /api/tokens. ExpiresIn is a Go
// duration ("720h"); empty lets the server choose.
type CreateTokenRequest struct {
	Name      string `json:"name"`
	ExpiresIn string `json:"expires_in,omitempty"`
}

// TokenResponse is the answer of POST /api/tokens. Token is the secret and is
// shown this once.
type TokenResponse struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Token is a personal API token as GET /api/tokens lists it, without the
// secret.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateUserRequest is the body of POST /api/users. Empty Role and TenantID
// let the server choose (role user, tenant default).
type CreateUserRequest struct {
	Username string        `json:"username"`
	Email    string        `json:"email,omitempty"`
	Password string        `json:"password"`
	Role     novacron.Role `json:"role,omitempty"`
	TenantID string        `json:"tenant_id,omitempty"`
}

// UpdateUserRequest is the body of PUT /api/users/{id}; nil fields are left
// as they are.
type UpdateUserRequest struct {
	Email    *string        `json:"email,omitempty"`
	Role     *novacron.Role `json:"role,omitempty"`
	TenantID *string        `json:"tenant_id,omitempty"`
	Password *string        `json:"password,omitempty"`
}

// CreateTenantRequest is the body of POST /api/tenants; nil Quotas means no
// limits.
type CreateTenantRequest struct {
	Name   string           `json:"name"`
	Quotas *novacron.Quotas `json:"quotas,omitempty"`
}

// UpdateTenantRequest is the body of PUT /api/tenants/{id}; nil fields are
// left as they are. Quotas replaces all five limits at once (a nil limit
// inside it removes that limit).
type UpdateTenantRequest struct {
	Name   *string          `json:"name,omitempty"`
	Quotas *novacron.Quotas `json:"quotas,omitempty"`
}

// Info is the answer of GET /api/info.
type Info struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	APIVersion string   `json:"api_version"`
	Drivers    []string `json:"drivers"`
	Features   []string `json:"features"`
}

// Health is the answer of GET /health: Status "ok", or "degraded" with a 503
// when a check fails.
type Health struct {
	Status string         `json:"status"`
	Checks map[string]any `json:"checks,omitempty"`
}
