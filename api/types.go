package api

import (
	"encoding/json"
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

// CreateVMRequest is the body of POST /api/vm/vms. Config holds the driver's
// fields (for process and container: {"command": [...], "env": {...},
// "cwd": "..."}). NodeID places the VM on one node (admin); NodeSelector
// restricts placement to nodes with these labels. Start starts the VM once
// created. Zero values are left out and the server's defaults apply.
type CreateVMRequest struct {
	Name          string                 `json:"name"`
	Driver        string                 `json:"driver"`
	CPUs          int                    `json:"cpus"`
	MemoryMB      int                    `json:"memory_mb"`
	DiskGB        int                    `json:"disk_gb,omitempty"`
	ImageID       string                 `json:"image_id,omitempty"`
	Config        json.RawMessage        `json:"config,omitempty"`
	Labels        map[string]string      `json:"labels,omitempty"`
	NodeID        string                 `json:"node_id,omitempty"`
	NodeSelector  map[string]string      `json:"node_selector,omitempty"`
	Start         bool                   `json:"start,omitempty"`
	RestartPolicy novacron.RestartPolicy `json:"restart_policy,omitempty"`
	Autostart     *bool                  `json:"autostart,omitempty"`
}

// UpdateVMRequest is the body of PUT /api/vm/vms/{id}; nil fields are left
// as they are. Labels replaces every label (a pointer to an empty map
// removes them all). Changing CPUs or MemoryMB needs a stopped VM.
type UpdateVMRequest struct {
	Name          *string                 `json:"name,omitempty"`
	CPUs          *int                    `json:"cpus,omitempty"`
	MemoryMB      *int                    `json:"memory_mb,omitempty"`
	Labels        *map[string]string      `json:"labels,omitempty"`
	RestartPolicy *novacron.RestartPolicy `json:"restart_policy,omitempty"`
	Autostart     *bool                   `json:"autostart,omitempty"`
}

// StopOptions is the body of POST /api/vm/vms/{id}/stop: Force kills the
// guest at once; otherwise it gets TimeoutS seconds (0: the server's
// default) to stop before it is killed.
type StopOptions struct {
	Force    bool `json:"force,omitempty"`
	TimeoutS int  `json:"timeout_s,omitempty"`
}

// VMFilter selects VMs in ListVMs. Empty fields do not filter; a VM must
// carry every label of Labels.
type VMFilter struct {
	State  novacron.VMState
	NodeID string
	Driver string
	Name   string
	Labels map[string]string
	Limit  int
	Cursor string
}

// OperationFilter selects operations in ListOperations. Empty fields do not
// filter.
type OperationFilter struct {
	VMID   string
	Status novacron.OpStatus
	Limit  int
	Cursor string
}

// WaitOptions makes an asynchronous call wait for its operation to end
// (?wait=1), for at most Timeout (?timeout=; 0: the server's default of
// 60s, and the server allows at most 300s). Without Wait the call answers
// as soon as the operation has begun.
type WaitOptions struct {
	Wait    bool
	Timeout time.Duration
}

// VMStats is a sample of a running VM's resource use (GET
// /api/vm/vms/{id}/stats): counters since the guest started. A counter the
// driver cannot read is nil.
type VMStats struct {
	// CPUSeconds is CPU time used, user and system.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MemoryBytes is resident memory.
	MemoryBytes    int64  `json:"memory_bytes"`
	DiskReadBytes  *int64 `json:"disk_read_bytes,omitempty"`
	DiskWriteBytes *int64 `json:"disk_write_bytes,omitempty"`
	DiskReadOps    *int64 `json:"disk_read_ops,omitempty"`
	DiskWriteOps   *int64 `json:"disk_write_ops,omitempty"`
	// Pids is the number of processes and threads (process and container
	// VMs).
	Pids           *int64    `json:"pids,omitempty"`
	NetworkRxBytes *int64    `json:"network_rx_bytes,omitempty"`
	NetworkTxBytes *int64    `json:"network_tx_bytes,omitempty"`
	SampledAt      time.Time `json:"sampled_at"`
}
