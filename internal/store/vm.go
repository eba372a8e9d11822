package store

import (
	"encoding/json"
	"fmt"

	"github.com/novacron/novacron"
)

// States are every VM state the schema accepts.
var States = []novacron.VMState{
	novacron.StateCreating, novacron.StateStopped, novacron.StateStarting, novacron.StateRunning,
	novacron.StateStopping, novacron.StateRestarting, novacron.StatePaused, novacron.StateMigrating,
	novacron.StateDeleting, novacron.StateFailed,
}

// ValidState reports whether s is a known VM state.
func ValidState(s novacron.VMState) bool { return StateIn(s, States) }

// StateIn reports whether s is one of states. No state is in an empty list.
func StateIn(s novacron.VMState, states []novacron.VMState) bool {
	for _, v := range states {
		if v == s {
			return true
		}
	}
	return false
}

// ValidDriver reports whether d is a known driver.
func ValidDriver(d string) bool {
	return d == novacron.DriverQEMU || d == novacron.DriverContainer || d == novacron.DriverProcess
}

// ValidNodeStatus reports whether s is a known node status.
func ValidNodeStatus(s string) bool {
	return s == novacron.NodeOnline || s == novacron.NodeOffline || s == novacron.NodeMaintenance
}

// InvalidState is the error of an action refused in state s.
func InvalidState(s novacron.VMState) error {
	return novacron.Errorf(novacron.EInvalidState, "vm is %s", s)
}

// Busy is the error of an action refused while operation opID runs.
func Busy(opID string) error {
	return novacron.Errorf(novacron.EInvalidState, "vm is busy with operation %s", opID)
}

// NameTaken is the error of a VM name already used in the tenant.
func NameTaken(name string) error {
	return novacron.Errorf(novacron.EConflict, "a VM named %s already exists", name)
}

// AmbiguousName is the error of a name lookup across tenants that matches
// VMs in several.
func AmbiguousName() error {
	return novacron.Errorf(novacron.EConflict, "name is ambiguous; use the id")
}

// OperationFinished is the error of a change to an operation that ended.
func OperationFinished() error {
	return novacron.Errorf(novacron.EConflict, "operation already finished")
}

// VMJSON holds the JSON columns of a VM as the stores write them.
type VMJSON struct {
	Config []byte
	Labels []byte
}

// PrepareVM validates vm for CreateVM and returns a copy with the defaults
// filled in (state creating, restart policy never, a new id when empty),
// canonical ids and the JSON columns. vm itself is not changed.
func PrepareVM(vm *novacron.VM) (novacron.VM, VMJSON, error) {
	if vm == nil {
		return novacron.VM{}, VMJSON{}, novacron.FieldError("vm", "is required")
	}
	v := *vm
	if err := AssignID(&v.ID); err != nil {
		return v, VMJSON{}, err
	}
	if v.State == "" {
		v.State = novacron.StateCreating
	}
	if v.RestartPolicy == "" {
		v.RestartPolicy = novacron.RestartNever
	}
	if !ValidDriver(v.Driver) {
		return v, VMJSON{}, novacron.FieldError("driver", "must be qemu, container or process")
	}
	if !ValidState(v.State) {
		return v, VMJSON{}, novacron.FieldError("state", "unknown state %q", v.State)
	}
	if v.DesiredState != "" && !ValidState(v.DesiredState) {
		return v, VMJSON{}, novacron.FieldError("desired_state", "unknown state %q", v.DesiredState)
	}
	if v.DiskGB < 0 {
		return v, VMJSON{}, novacron.FieldError("disk_gb", "must not be negative")
	}
	tenant, ok := ParseID(v.TenantID)
	if !ok {
		return v, VMJSON{}, novacron.FieldError("tenant_id", "tenant does not exist")
	}
	v.TenantID = tenant
	for _, ref := range []struct {
		field string
		id    *string
	}{{"node_id", &v.NodeID}, {"owner_id", &v.OwnerID}, {"image_id", &v.ImageID}} {
		if *ref.id == "" {
			continue
		}
		id, ok := ParseID(*ref.id)
		if !ok {
			return v, VMJSON{}, novacron.FieldError(ref.field, "not a valid id")
		}
		*ref.id = id
	}
	config := []byte(v.Config)
	if len(config) == 0 {
		config = []byte("{}")
	}
	if !json.Valid(config) {
		return v, VMJSON{}, novacron.FieldError("config", "is not valid JSON")
	}
	js := VMJSON{Config: config}
	var err error
	if js.Labels, err = prepareSpec(&v); err != nil {
		return v, VMJSON{}, err
	}
	return v, js, nil
}

// PrepareSpec validates the fields that UpdateVMSpec writes and returns the
// labels column. vm.ID must already be canonical.
func PrepareSpec(vm *novacron.VM) ([]byte, error) {
	v := *vm
	return prepareSpec(&v)
}

func prepareSpec(v *novacron.VM) ([]byte, error) {
	if v.Name == "" {
		return nil, novacron.FieldError("name", "is required")
	}
	if v.CPUs <= 0 {
		return nil, novacron.FieldError("cpus", "must be positive")
	}
	if v.MemoryMB <= 0 {
		return nil, novacron.FieldError("memory_mb", "must be positive")
	}
	if !v.RestartPolicy.Valid() {
		return nil, novacron.FieldError("restart_policy", "must be never, on-failure or always")
	}
	return EncodeLabels(v.Labels)
}

// EncodeLabels returns labels as a JSON object, {} for nil.
func EncodeLabels(labels map[string]string) ([]byte, error) {
	if labels == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return nil, fmt.Errorf("store: labels: %w", err)
	}
	return b, nil
}

// DecodeLabels reads a labels column; it never returns a nil map.
func DecodeLabels(b []byte) (map[string]string, error) {
	labels := map[string]string{}
	if err := json.Unmarshal(b, &labels); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if labels == nil { // the column held null
		labels = map[string]string{}
	}
	return labels, nil
}

// DecodeQuotas reads a tenant's quotas column.
func DecodeQuotas(b []byte) (novacron.Quotas, error) {
	var q novacron.Quotas
	if err := json.Unmarshal(b, &q); err != nil {
		return q, fmt.Errorf("quotas: %w", err)
	}
	return q, nil
}

// CheckQuotas returns EQuotaExceeded for the first of the tenant's quotas
// (vms, vcpus, memory_mb, disk_gb, in that order) that used plus requested
// would exceed, and nil when every one holds. A nil quota is no limit; a
// quantity not requested (zero or less) is not checked, so a tenant over a
// lowered quota may still shrink.
func CheckQuotas(q novacron.Quotas, used, requested novacron.Usage) error {
	for _, c := range []struct {
		name            string
		limit           *int64
		used, requested int64
	}{
		{"vms", q.VMs, used.VMs, requested.VMs},
		{"vcpus", q.VCPUs, used.VCPUs, requested.VCPUs},
		{"memory_mb", q.MemoryMB, used.MemoryMB, requested.MemoryMB},
		{"disk_gb", q.DiskGB, used.DiskGB, requested.DiskGB},
	} {
		if c.limit == nil || c.requested <= 0 || c.used+c.requested <= *c.limit {
			continue
		}
		return &novacron.Error{
			Code: novacron.EQuotaExceeded,
			Message: fmt.Sprintf("quota %s exceeded: %d used + %d requested > %d",
				c.name, c.used, c.requested, *c.limit),
			Details: map[string]any{"quota": c.name, "limit": *c.limit, "used": c.used, "requested": c.requested},
		}
	}
	return nil
}

// PrepareOperation validates op for insertion and returns a copy with a
// new id (when empty), status running, no finish time and a canonical
// user id; vm and tenant are the ids of its VM. op itself is not changed.
func PrepareOperation(op *novacron.Operation, vm, tenant string) (novacron.Operation, error) {
	if op == nil {
		return novacron.Operation{}, novacron.FieldError("operation", "is required")
	}
	o := *op
	if o.Action == "" {
		return o, novacron.FieldError("action", "is required")
	}
	if err := AssignID(&o.ID); err != nil {
		return o, err
	}
	if o.UserID != "" {
		u, ok := ParseID(o.UserID)
		if !ok {
			return o, novacron.FieldError("user_id", "not a valid id")
		}
		o.UserID = u
	}
	o.VMID, o.TenantID = vm, tenant
	o.Status = novacron.OpRunning
	o.FinishedAt = nil
	return o, nil
}

// NodeJSON holds the JSON columns of a node as the stores write them.
type NodeJSON struct {
	Capabilities, Resources, Labels []byte
}

// PrepareNode validates n for UpsertNode and returns a copy with a new id
// (when empty) and the JSON columns. n itself is not changed.
func PrepareNode(n *novacron.Node) (novacron.Node, NodeJSON, error) {
	if n == nil {
		return novacron.Node{}, NodeJSON{}, novacron.FieldError("node", "is required")
	}
	v := *n
	if v.Name == "" {
		return v, NodeJSON{}, novacron.FieldError("name", "is required")
	}
	if !ValidNodeStatus(v.Status) {
		return v, NodeJSON{}, novacron.FieldError("status", "must be online, offline or maintenance")
	}
	if err := AssignID(&v.ID); err != nil {
		return v, NodeJSON{}, err
	}
	var js NodeJSON
	for _, c := range []struct {
		field string
		in    json.RawMessage
		out   *[]byte
	}{{"capabilities", v.Capabilities, &js.Capabilities}, {"resources", v.Resources, &js.Resources}} {
		b := []byte(c.in)
		if len(b) == 0 {
			b = []byte("{}")
		}
		if !json.Valid(b) {
			return v, NodeJSON{}, novacron.FieldError(c.field, "is not valid JSON")
		}
		*c.out = b
	}
	var err error
	if js.Labels, err = EncodeLabels(v.Labels); err != nil {
		return v, NodeJSON{}, err
	}
	return v, js, nil
}

// FilterID canonicalizes an optional id of a list filter: "" stays "", a
// malformed id is EInvalid naming field.
func FilterID(field, id string) (string, error) {
	if id == "" {
		return "", nil
	}
	v, ok := ParseID(id)
	if !ok {
		return "", novacron.FieldError(field, "not a valid id")
	}
	return v, nil
}

// FilterLabels returns the labels a list must match as a JSON object, nil
// when there are none.
func FilterLabels(labels map[string]string) ([]byte, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	return EncodeLabels(labels)
}
