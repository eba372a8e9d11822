package vm

import (
	"context"
	"encoding/json"
	"io"
	"regexp"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/driver"
)

// Bounds of a VM's resources.
const (
	MaxCPUs      = 256
	MinMemoryMB  = 16
	MaxMemoryMB  = 4 << 20 // 4 TiB
	MaxDiskGB    = 64 << 10
	MaxLabels    = 64
	MaxConfigLen = 64 << 10
)

// CreateRequest is the body of POST /api/vm/vms.
type CreateRequest struct {
	Name          string                 `json:"name"`
	Driver        string                 `json:"driver"`
	CPUs          int                    `json:"cpus"`
	MemoryMB      int                    `json:"memory_mb"`
	DiskGB        int                    `json:"disk_gb"`
	ImageID       string                 `json:"image_id"`
	Config        json.RawMessage        `json:"config"`
	Labels        map[string]string      `json:"labels"`
	NodeID        string                 `json:"node_id"`
	NodeSelector  map[string]string      `json:"node_selector"`
	Start         bool                   `json:"start"`
	RestartPolicy novacron.RestartPolicy `json:"restart_policy"`
	Autostart     bool                   `json:"autostart"`
}

// UpdateRequest is the body of PUT /api/vm/vms/{id}.
type UpdateRequest struct {
	Name          *string                 `json:"name"`
	CPUs          *int                    `json:"cpus"`
	MemoryMB      *int                    `json:"memory_mb"`
	Labels        *map[string]string      `json:"labels"`
	RestartPolicy *novacron.RestartPolicy `json:"restart_policy"`
	Autostart     *bool                   `json:"autostart"`
}

// StopOptions is the body of POST /api/vm/vms/{id}/stop.
type StopOptions struct {
	Force    bool `json:"force"`
	TimeoutS int  `json:"timeout_s"`
}

var labelKeyRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,62})$`)

func validateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return novacron.FieldError("labels", "at most %d labels", MaxLabels)
	}
	for k, v := range labels {
		if !labelKeyRE.MatchString(k) {
			return novacron.FieldError("labels", "key %q must be 1-63 characters of letters, digits, '.', '_', '/', '-'", k)
		}
		if len(v) > 255 {
			return novacron.FieldError("labels."+k, "must be at most 255 characters")
		}
	}
	return nil
}

func validateResources(cpus, memoryMB int) error {
	if cpus < 1 || cpus > MaxCPUs {
		return novacron.FieldError("cpus", "must be between 1 and %d", MaxCPUs)
	}
	if memoryMB < MinMemoryMB || memoryMB > MaxMemoryMB {
		return novacron.FieldError("memory_mb", "must be between %d and %d", MinMemoryMB, MaxMemoryMB)
	}
	return nil
}

// Create validates a request, records the VM (state creating) and its
// create operation, and creates (and optionally starts) the guest in the
// background.
func (s *Service) Create(ctx context.Context, actor *novacron.Actor, req CreateRequest) (*novacron.VM, error) {
	if err := novacron.ValidateName("name", req.Name); err != nil {
		return nil, err
	}
	switch req.Driver {
	case novacron.DriverQEMU, novacron.DriverContainer, novacron.DriverProcess:
	case "":
		return nil, novacron.FieldError("driver", "is required: qemu, container or process")
	default:
		return nil, novacron.FieldError("driver", "must be qemu, container or process")
	}
	if req.Driver == novacron.DriverProcess && actor.Role != novacron.RoleAdmin && !s.cfg.AllowUserProcess {
		return nil, novacron.Errorf(novacron.EForbidden, "only admins may create process VMs: they run code on the host")
	}
	if err := validateResources(req.CPUs, req.MemoryMB); err != nil {
		return nil, err
	}
	if req.DiskGB < 0 || req.DiskGB > MaxDiskGB {
		return nil, novacron.FieldError("disk_gb", "must be between 0 and %d", MaxDiskGB)
	}
	if err := validateLabels(req.Labels); err != nil {
		return nil, err
	}
	if req.RestartPolicy == "" {
		req.RestartPolicy = novacron.RestartNever
	}
	if !req.RestartPolicy.Valid() {
		return nil, novacron.FieldError("restart_policy", "must be never, on-failure or always")
	}
	if len(req.NodeSelector) > 0 {
		return nil, novacron.FieldError("node_selector", "no node matches (this control plane has one node)")
	}
	if len(req.Config) > MaxConfigLen {
		return nil, novacron.FieldError("config", "must be at most %d bytes", MaxConfigLen)
	}
	if len(req.Config) == 0 || string(req.Config) == "null" {
		req.Config = json.RawMessage("{}")
	}
	nodeID := s.local
	if req.NodeID != "" {
		if actor.Role != novacron.RoleAdmin {
			return nil, novacron.Errorf(novacron.EForbidden, "only admins choose the node of a VM")
		}
		nodeID = req.NodeID
	}
	node, err := s.node(nodeID)
	if err != nil {
		if req.NodeID != "" {
			return nil, novacron.FieldError("node_id", "no such node, or it is not connected")
		}
		return nil, err
	}
	if _, ok := node.info.Drivers[req.Driver]; !ok {
		return nil, novacron.FieldError("driver", "driver %s is not available on node %s", req.Driver, node.node.Name)
	}
	if err := node.client.ValidateConfig(ctx, req.Driver, req.Config); err != nil {
		return nil, err
	}
	if err := s.checkImages(ctx, actor, req.Driver, req.ImageID, req.Config); err != nil {
		return nil, err
	}
	vm := &novacron.VM{Name: req.Name, Driver: req.Driver, State: novacron.StateCreating,
		DesiredState: novacron.StateStopped, NodeID: nodeID, TenantID: actor.TenantID, OwnerID: actor.UserID,
		CPUs: req.CPUs, MemoryMB: req.MemoryMB, DiskGB: req.DiskGB, ImageID: req.ImageID, Config: req.Config, Labels: req.Labels,
		RestartPolicy: req.RestartPolicy, Autostart: req.Autostart}
	if req.Start {
		vm.DesiredState = novacron.StateRunning
	}
	op := &novacron.Operation{Action: string(novacron.ActionCreate), UserID: actor.UserID}
	if err := s.store.CreateVM(ctx, vm, op); err != nil {
		return nil, err
	}
	s.publishVM(ctx, vm)
	s.publishOperation(ctx, op)
	s.run(op, func(ctx context.Context) error { return s.doCreate(ctx, vm, op, req.Start) })
	return vm, nil
}

// Get returns a VM the actor may see.
func (s *Service) Get(ctx context.Context, actor *novacron.Actor, id string) (*novacron.VM, error) {
	return s.store.GetVM(ctx, auth.ScopeOf(actor), id)
}

// List lists the VMs the actor may see.
func (s *Service) List(ctx context.Context, actor *novacron.Actor, f novacron.VMFilter) ([]*novacron.VM, string, error) {
	return s.store.ListVMs(ctx, auth.ScopeOf(actor), f)
}

// Update changes a VM's name, labels, policies, or (while it is not
// running) its resources.
func (s *Service) Update(ctx context.Context, actor *novacron.Actor, id string, req UpdateRequest) (*novacron.VM, error) {
	scope := auth.ScopeOf(actor)
	vm, err := s.store.GetVM(ctx, scope, id)
	if err != nil {
		return nil, err
	}
	states := []novacron.VMState{novacron.StateStopped, novacron.StateFailed, novacron.StateRunning, novacron.StatePaused,
		novacron.StateStarting, novacron.StateStopping, novacron.StateRestarting, novacron.StateCreating}
	if req.Name != nil {
		if err := novacron.ValidateName("name", *req.Name); err != nil {
			return nil, err
		}
		vm.Name = *req.Name
	}
	resize := false
	if req.CPUs != nil && *req.CPUs != vm.CPUs {
		vm.CPUs, resize = *req.CPUs, true
	}
	if req.MemoryMB != nil && *req.MemoryMB != vm.MemoryMB {
		vm.MemoryMB, resize = *req.MemoryMB, true
	}
	if err := validateResources(vm.CPUs, vm.MemoryMB); err != nil {
		return nil, err
	}
	if resize {
		tr := novacron.Transitions[novacron.ActionResize]
		if !tr.Allows(vm.State) {
			return nil, novacron.Errorf(novacron.EInvalidState, "vm %s is %s: stop it before changing cpus or memory_mb", vm.Name, vm.State)
		}
		states = tr.From
	}
	if req.Labels != nil {
		if err := validateLabels(*req.Labels); err != nil {
			return nil, err
		}
		vm.Labels = *req.Labels
	}
	if req.RestartPolicy != nil {
		if !req.RestartPolicy.Valid() {
			return nil, novacron.FieldError("restart_policy", "must be never, on-failure or always")
		}
		vm.RestartPolicy = *req.RestartPolicy
	}
	if req.Autostart != nil {
		vm.Autostart = *req.Autostart
	}
	if err := s.store.UpdateVMSpec(ctx, scope, vm, states); err != nil {
		return nil, err
	}
	return vm, nil
}

// Act starts one lifecycle action (start, stop, restart, pause, resume) and
// returns the VM in its transitional state; the action goes on in the
// background as an operation.
func (s *Service) Act(ctx context.Context, actor *novacron.Actor, id string, action novacron.Action, stop StopOptions) (*novacron.VM, error) {
	vm, err := s.store.GetVM(ctx, auth.ScopeOf(actor), id)
	if err != nil {
		return nil, err
	}
	if stop.TimeoutS < 0 || stop.TimeoutS > 3600 {
		return nil, novacron.FieldError("timeout_s", "must be between 0 and 3600")
	}
	timeout := s.cfg.StopTimeout
	if stop.TimeoutS > 0 {
		timeout = time.Duration(stop.TimeoutS) * time.Second
	}
	op, err := s.begin(ctx, vm, action, actor.UserID)
	if err != nil {
		return nil, err
	}
	var f func(context.Context) error
	switch action {
	case novacron.ActionStart:
		f = func(ctx context.Context) error { return s.doStart(ctx, vm, op) }
	case novacron.ActionStop:
		f = func(ctx context.Context) error { return s.doStop(ctx, vm, op, timeout, stop.Force) }
	case novacron.ActionRestart:
		f = func(ctx context.Context) error { return s.doRestart(ctx, vm, op, timeout) }
	case novacron.ActionPause, novacron.ActionResume:
		f = func(ctx context.Context) error { return s.doPause(ctx, vm, op, action == novacron.ActionPause) }
	default:
		return nil, novacron.Errorf(novacron.EInvalid, "unknown action %s", action)
	}
	s.run(op, f)
	return vm, nil
}

// begin checks the state machine and records the operation atomically.
func (s *Service) begin(ctx context.Context, vm *novacron.VM, action novacron.Action, userID string) (*novacron.Operation, error) {
	tr := novacron.Transitions[action]
	if !tr.Allows(vm.State) {
		return nil, novacron.Errorf(novacron.EInvalidState, "cannot %s vm %s: it is %s", action, vm.Name, vm.State)
	}
	op := &novacron.Operation{Action: string(action), UserID: userID}
	was := vm.State
	if err := s.store.BeginOperation(ctx, vm, tr.From, tr.During, tr.Desired, op); err != nil {
		return nil, err
	}
	if vm.State != was {
		s.publishVM(ctx, vm)
	}
	s.publishOperation(ctx, op)
	return op, nil
}

// Delete stops (if needed) and deletes a VM in the background.
func (s *Service) Delete(ctx context.Context, actor *novacron.Actor, id string) (*novacron.VM, error) {
	vm, err := s.store.GetVM(ctx, auth.ScopeOf(actor), id)
	if err != nil {
		return nil, err
	}
	was := vm.State
	op, err := s.begin(ctx, vm, novacron.ActionDelete, actor.UserID)
	if err != nil {
		return nil, err
	}
	s.run(op, func(ctx context.Context) error { return s.doDelete(ctx, vm, op, was) })
	return vm, nil
}

// Logs returns the tail of a VM's output.
func (s *Service) Logs(ctx context.Context, actor *novacron.Actor, id string, tail int) ([]byte, error) {
	vm, err := s.store.GetVM(ctx, auth.ScopeOf(actor), id)
	if err != nil {
		return nil, err
	}
	node, err := s.node(vm.NodeID)
	if err != nil {
		return nil, err
	}
	return guestLogs(ctx, node, vm.ID, tail)
}

// guestLogs reads a guest's logs; a guest its node does not hold (never
// created) has none.
func guestLogs(ctx context.Context, node *nodeEntry, id string, tail int) ([]byte, error) {
	b, err := node.client.GuestLogs(ctx, id, tail)
	if novacron.IsCode(err, novacron.ENotFound) {
		return []byte{}, nil
	}
	return b, err
}

// vmWithCapability reads a VM the actor may see on a connected node whose
// driver has the capability has reports.
func (s *Service) vmWithCapability(ctx context.Context, actor *novacron.Actor, id, what string, has func(driver.Capabilities) bool) (*novacron.VM, *nodeEntry, error) {
	vm, err := s.store.GetVM(ctx, auth.ScopeOf(actor), id)
	if err != nil {
		return nil, nil, err
	}
	node, err := s.node(vm.NodeID)
	if err != nil {
		return nil, nil, err
	}
	if !has(node.info.Drivers[vm.Driver]) {
		return nil, nil, novacron.Errorf(novacron.EInvalid, "%s VMs have no %s", vm.Driver, what)
	}
	return vm, node, nil
}

// Console connects to a running VM's serial console, for its owner and the
// operators and admins of its tenant (auth.Interactive). One connection at
// a time per VM: another is a conflict. The caller closes it.
func (s *Service) Console(ctx context.Context, actor *novacron.Actor, id string) (io.ReadWriteCloser, error) {
	vm, node, err := s.vmWithCapability(ctx, actor, id, "console", func(c driver.Capabilities) bool { return c.Console })
	if err != nil {
		return nil, err
	}
	if err := auth.Interactive(actor, vm); err != nil {
		return nil, err
	}
	if vm.State != novacron.StateRunning && vm.State != novacron.StatePaused {
		return nil, novacron.Errorf(novacron.EInvalidState, "vm %s is %s: its console is there only while it runs", vm.Name, vm.State)
	}
	c, err := node.client.GuestConsole(ctx, vm.ID)
	if novacron.IsCode(err, novacron.ENotFound) {
		return nil, novacron.Errorf(novacron.EInvalidState, "vm %s is not running", vm.Name)
	}
	return c, err
}

// ConsoleLog returns the last tail lines of a VM's serial console output
// (all that is kept when tail <= 0), from its current or last run.
func (s *Service) ConsoleLog(ctx context.Context, actor *novacron.Actor, id string, tail int) ([]byte, error) {
	vm, node, err := s.vmWithCapability(ctx, actor, id, "console", func(c driver.Capabilities) bool { return c.Console })
	if err != nil {
		return nil, err
	}
	return guestLogs(ctx, node, vm.ID, tail)
}

// Stats samples a running VM's resource use on its node.
func (s *Service) Stats(ctx context.Context, actor *novacron.Actor, id string) (driver.Stats, error) {
	vm, node, err := s.vmWithCapability(ctx, actor, id, "stats", func(c driver.Capabilities) bool { return c.Stats })
	if err != nil {
		return driver.Stats{}, err
	}
	if vm.State != novacron.StateRunning && vm.State != novacron.StatePaused {
		return driver.Stats{}, novacron.Errorf(novacron.EInvalidState, "vm %s is %s", vm.Name, vm.State)
	}
	return node.client.GuestStats(ctx, vm.ID)
}
