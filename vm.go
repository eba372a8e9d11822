package novacron

import (
	"context"
	"encoding/json"
	"time"
)

// VMState is the observed state of a VM.
type VMState string

// The VM states.
const (
	StateCreating   VMState = "creating"
	StateStopped    VMState = "stopped"
	StateStarting   VMState = "starting"
	StateRunning    VMState = "running"
	StateStopping   VMState = "stopping"
	StateRestarting VMState = "restarting"
	StatePaused     VMState = "paused"
	StateMigrating  VMState = "migrating"
	StateDeleting   VMState = "deleting"
	StateFailed     VMState = "failed"
)

// Drivers.
const (
	DriverQEMU      = "qemu"
	DriverContainer = "container"
	DriverProcess   = "process"
)

// RestartPolicy says whether a guest that stopped on its own is started again.
type RestartPolicy string

// Restart policies.
const (
	RestartNever     RestartPolicy = "never"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartAlways    RestartPolicy = "always"
)

// Valid reports whether p is a known policy.
func (p RestartPolicy) Valid() bool {
	return p == RestartNever || p == RestartOnFailure || p == RestartAlways
}

// VM is a virtual machine, container or process managed by NovaCron.
// DesiredState is what the VM should be doing ("running" or "stopped"); State
// is what it was last seen doing.
type VM struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Driver        string            `json:"driver"`
	State         VMState           `json:"state"`
	DesiredState  VMState           `json:"-"`
	StateReason   string            `json:"state_reason"`
	ExitCode      *int              `json:"exit_code"`
	NodeID        string            `json:"node_id"`
	NodeStatus    string            `json:"node_status"`
	TenantID      string            `json:"tenant_id"`
	OwnerID       string            `json:"owner_id"`
	CPUs          int               `json:"cpus"`
	MemoryMB      int               `json:"memory_mb"`
	DiskGB        int               `json:"disk_gb"`
	ImageID       string            `json:"image_id"`
	Config        json.RawMessage   `json:"config"`
	Labels        map[string]string `json:"labels"`
	RestartPolicy RestartPolicy     `json:"restart_policy"`
	Autostart     bool              `json:"autostart"`
	OperationID   string            `json:"operation_id"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// OpStatus is the status of an operation.
type OpStatus string

// Operation statuses.
const (
	OpRunning   OpStatus = "running"
	OpSucceeded OpStatus = "succeeded"
	OpFailed    OpStatus = "failed"
)

// Operation records one asynchronous action on a VM, so that a client can
// wait for it and a restarted server can resume or fail it.
type Operation struct {
	ID         string     `json:"id"`
	VMID       string     `json:"vm_id"`
	TenantID   string     `json:"tenant_id"`
	Action     string     `json:"action"`
	Status     OpStatus   `json:"status"`
	Phase      string     `json:"phase,omitempty"`
	Error      string     `json:"error"`
	UserID     string     `json:"user_id"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Node is a host that runs guests.
type Node struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Address      string            `json:"address"`
	Status       string            `json:"status"`
	Capabilities json.RawMessage   `json:"capabilities"`
	Resources    json.RawMessage   `json:"resources"`
	Labels       map[string]string `json:"labels"`
	LastSeen     time.Time         `json:"last_seen"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

// Node statuses.
const (
	NodeOnline      = "online"
	NodeOffline     = "offline"
	NodeMaintenance = "maintenance"
)

// VMFilter selects VMs. Empty fields do not filter; Labels must all match.
type VMFilter struct {
	Page
	State  VMState
	NodeID string
	Driver string
	Name   string
	Labels map[string]string
}

// OperationFilter selects operations.
type OperationFilter struct {
	Page
	VMID   string
	Status OpStatus
}

// Usage is what a tenant holds, counted against its quotas.
type Usage struct {
	VMs      int64 `json:"vms"`
	VCPUs    int64 `json:"vcpus"`
	MemoryMB int64 `json:"memory_mb"`
	DiskGB   int64 `json:"disk_gb"`
}

// VMStore is the persistence of VMs, operations and nodes. The rules of Store
// apply (scopes, ENotFound for malformed ids, EConflict for duplicates).
type VMStore interface {
	// CreateVM inserts vm (state creating) and op in one transaction that
	// re-checks the tenant's quotas against its current usage: a VM that
	// would exceed one is EQuotaExceeded with the quota named in the
	// details ("quota": "vcpus", "limit", "used", "requested"). A name taken
	// in the tenant is EConflict.
	CreateVM(ctx context.Context, vm *VM, op *Operation) error
	GetVM(ctx context.Context, scope Scope, id string) (*VM, error)
	// GetVMByName finds a VM by name within a tenant's scope. Across every
	// tenant (AllTenants) a name that VMs of several tenants share is
	// EConflict ("name is ambiguous; use the id").
	GetVMByName(ctx context.Context, scope Scope, name string) (*VM, error)
	// ListVMs lists VMs oldest first.
	ListVMs(ctx context.Context, scope Scope, f VMFilter) ([]*VM, string, error)
	// UpdateVMSpec writes Name, CPUs, MemoryMB, Labels, RestartPolicy and
	// Autostart, re-checking quotas for growth, but only while the VM's
	// state is one of states (EInvalidState otherwise).
	UpdateVMSpec(ctx context.Context, scope Scope, vm *VM, states []VMState) error
	// BeginOperation atomically moves a VM whose state is one of from and
	// that has no running operation to state to (and desired state desired,
	// when not empty), records op and points the VM at it. Otherwise it is
	// EInvalidState naming the current state. It reloads vm.
	BeginOperation(ctx context.Context, vm *VM, from []VMState, to, desired VMState, op *Operation) error
	// SetVMState records an observed state, reason and exit code.
	SetVMState(ctx context.Context, id string, state VMState, reason string, exitCode *int) error
	// ObserveVMState records a state observed on the node, but only while
	// the VM is still as seen (the same state and updated_at) with no
	// operation running: the reconcile loop uses it so that it never
	// overwrites what happened since it read the VM. It reports whether it
	// wrote.
	ObserveVMState(ctx context.Context, seen *VM, state VMState, reason string, exitCode *int) (bool, error)
	// SetVMDesiredState records what the VM should be doing.
	SetVMDesiredState(ctx context.Context, id string, desired VMState) error
	// DeleteVM removes the row.
	DeleteVM(ctx context.Context, id string) error
	// TenantUsage sums a tenant's VMs.
	TenantUsage(ctx context.Context, tenantID string) (Usage, error)

	GetOperation(ctx context.Context, scope Scope, id string) (*Operation, error)
	// ListOperations lists operations newest first.
	ListOperations(ctx context.Context, scope Scope, f OperationFilter) ([]*Operation, string, error)
	// SetOperationPhase records the phase a running operation reached.
	SetOperationPhase(ctx context.Context, id, phase string) error
	// FinishOperation ends a running operation, clearing the VM's
	// operation_id when it points at it. Finishing an ended one is EConflict.
	FinishOperation(ctx context.Context, id string, status OpStatus, errMsg string) error

	// UpsertNode creates the node named n.Name or updates its address,
	// status, capabilities, resources, labels and last_seen; it sets n.ID.
	UpsertNode(ctx context.Context, n *Node) error
	GetNode(ctx context.Context, id string) (*Node, error)
	ListNodes(ctx context.Context, page Page) ([]*Node, string, error)
}
