package vm

import (
	"context"
	"fmt"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/nodeclient"
)

// allVMs lists every VM on a node, across tenants.
func (s *Service) allVMs(ctx context.Context, nodeID string) ([]*novacron.VM, error) {
	var out []*novacron.VM
	f := novacron.VMFilter{NodeID: nodeID, Page: novacron.Page{Limit: 500}}
	for {
		vms, next, err := s.store.ListVMs(ctx, novacron.AllTenants, f)
		if err != nil {
			return nil, err
		}
		out = append(out, vms...)
		if next == "" {
			return out, nil
		}
		f.Cursor = next
	}
}

// recoverOperations settles the operations that a previous run of the
// control plane left running on a node: a delete is carried on, anything
// else ends with the VM in the state its node shows.
func (s *Service) recoverOperations(ctx context.Context, nodeID string) error {
	var ops []*novacron.Operation
	f := novacron.OperationFilter{Status: novacron.OpRunning, Page: novacron.Page{Limit: 500}}
	for {
		page, next, err := s.store.ListOperations(ctx, novacron.AllTenants, f)
		if err != nil {
			return err
		}
		ops = append(ops, page...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	node, err := s.node(nodeID)
	if err != nil {
		return err
	}
	for _, op := range ops {
		vm, err := s.store.GetVM(ctx, novacron.AllTenants, op.VMID)
		if novacron.IsCode(err, novacron.ENotFound) {
			status := novacron.OpFailed
			if op.Action == string(novacron.ActionDelete) {
				status = novacron.OpSucceeded
			}
			s.finish(ctx, op, status, "interrupted by a restart of the control plane")
			continue
		}
		if err != nil {
			return err
		}
		if vm.NodeID != nodeID {
			continue
		}
		s.log.Info("settling an interrupted operation", "operation", op.ID, "action", op.Action, "vm", vm.ID, "phase", op.Phase)
		st, serr := node.client.GuestStatus(ctx, vm.ID)
		switch {
		case op.Action == string(novacron.ActionDelete):
			s.run(op, func(ctx context.Context) error { return s.doDelete(ctx, vm, op, novacron.StateRunning) })
		case op.Action == string(novacron.ActionCreate) && novacron.IsCode(serr, novacron.ENotFound):
			_ = s.abandonCreate(vm, fmt.Errorf("interrupted"))
			s.finish(ctx, op, novacron.OpFailed, "create interrupted by a restart of the control plane")
		case serr != nil:
			s.setState(ctx, vm, novacron.StateFailed, "node cannot report the guest: "+publicError(serr), nil)
			s.finish(ctx, op, novacron.OpFailed, "interrupted by a restart of the control plane")
		default:
			state, reason, exit := fromGuest(st)
			s.setState(ctx, vm, state, reason, exit)
			if want := novacron.Transitions[novacron.Action(op.Action)].To; want == state ||
				(op.Action == string(novacron.ActionCreate) && state == novacron.StateStopped) {
				s.finish(ctx, op, novacron.OpSucceeded, "")
			} else {
				s.finish(ctx, op, novacron.OpFailed, fmt.Sprintf("interrupted by a restart of the control plane; the VM is %s", state))
			}
		}
	}
	return nil
}

func (s *Service) finish(ctx context.Context, op *novacron.Operation, status novacron.OpStatus, msg string) {
	if err := s.store.FinishOperation(ctx, op.ID, status, msg); err != nil {
		if !novacron.IsCode(err, novacron.EConflict) {
			s.log.Error("finish operation", "operation", op.ID, "err", err)
		}
	} else {
		s.ended(ctx, op, status, msg)
	}
	s.notify(op.ID)
}

// reconcileNode compares what a node runs with what the database says, for
// every VM on it that no operation is working on: guests that exited are
// recorded with their exit code and restarted when their policy says so;
// guests the database does not know are reported, never touched.
func (s *Service) reconcileNode(ctx context.Context, nodeID string) {
	node, err := s.node(nodeID)
	if err != nil {
		return
	}
	// The VMs are read before the guests are listed. The other way round,
	// a VM started between the two reads (its operation over, so nothing
	// guards it) would read running while its guest is missing from the
	// older list, and be failed as gone: listing hundreds of guests takes
	// long enough for that to happen under load.
	vms, err := s.allVMs(ctx, nodeID)
	if err != nil {
		s.log.Warn("reconcile: list VMs", "node", node.node.Name, "err", err)
		return
	}
	guests, err := node.client.ListGuests(ctx)
	if err != nil {
		s.log.Warn("reconcile: list guests", "node", node.node.Name, "err", err)
		return
	}
	byID := make(map[string]nodeclient.Guest, len(guests))
	for _, g := range guests {
		byID[g.ID] = g
	}
	known := make(map[string]bool, len(vms))
	for _, vm := range vms {
		known[vm.ID] = true
		if vm.OperationID != "" || vm.State.Transitional() {
			continue
		}
		g, ok := byID[vm.ID]
		if ok && g.Err != "" {
			continue // the node could not tell this time
		}
		switch vm.State {
		case novacron.StateRunning, novacron.StatePaused:
			if !ok {
				if s.observed(ctx, vm, novacron.StateFailed, "the guest is gone from its node", nil) {
					s.applyRestartPolicy(ctx, vm)
				}
				continue
			}
			state, reason, exit := fromGuest(g.Status)
			if g.Status.State == driver.GuestCreated {
				state, reason = novacron.StateFailed, "the guest is no longer running (did the host restart?)"
			}
			if state != vm.State && s.observed(ctx, vm, state, reason, exit) {
				s.applyRestartPolicy(ctx, vm)
			}
		case novacron.StateStopped, novacron.StateFailed:
			if ok && (g.Status.State == driver.GuestRunning || g.Status.State == driver.GuestPaused) {
				state, _, _ := fromGuest(g.Status)
				s.observed(ctx, vm, state, "", nil)
			}
		}
	}
	for _, g := range guests {
		if known[g.ID] {
			continue
		}
		if vm, err := s.store.GetVM(ctx, novacron.AllTenants, g.ID); err == nil && vm.NodeID == nodeID {
			continue // created since the VMs were read
		}
		s.mu.Lock()
		seen := s.orphans[g.ID]
		s.orphans[g.ID] = true
		s.mu.Unlock()
		if !seen {
			s.log.Warn("orphan guest: the node runs a guest the database does not know; it is left alone",
				"node", node.node.Name, "guest", g.ID, "driver", g.Driver, "state", g.Status.State)
		}
	}
}

// observed records a state seen on the node, unless an operation began or
// the state changed since the VM was read.
func (s *Service) observed(ctx context.Context, vm *novacron.VM, state novacron.VMState, reason string, exit *int) bool {
	ok, err := s.store.ObserveVMState(ctx, vm, state, reason, exit)
	if err != nil {
		s.log.Error("record observed vm state", "vm", vm.ID, "err", err)
		return false
	}
	if ok {
		s.log.Info("vm state observed", "vm", vm.ID, "name", vm.Name, "from", vm.State, "to", state, "reason", reason)
		vm.State, vm.StateReason, vm.ExitCode = state, reason, exit
		s.publishVM(ctx, vm)
	}
	return ok
}

// applyRestartPolicy starts a VM that stopped on its own again when its
// policy says so, unless it is crash-looping.
func (s *Service) applyRestartPolicy(ctx context.Context, vm *novacron.VM) {
	switch {
	case vm.RestartPolicy == novacron.RestartAlways && (vm.State == novacron.StateStopped || vm.State == novacron.StateFailed):
	case vm.RestartPolicy == novacron.RestartOnFailure && vm.State == novacron.StateFailed:
	default:
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	kept := s.restarts[vm.ID][:0]
	for _, t := range s.restarts[vm.ID] {
		if now.Sub(t) < s.cfg.RestartWindow {
			kept = append(kept, t)
		}
	}
	looping := len(kept) >= s.cfg.RestartLimit
	if !looping {
		kept = append(kept, now)
	}
	s.restarts[vm.ID] = kept
	s.mu.Unlock()
	if looping {
		reason := fmt.Sprintf("%s; not restarted: %d restarts within %s", vm.StateReason, s.cfg.RestartLimit, s.cfg.RestartWindow)
		s.setState(ctx, vm, novacron.StateFailed, reason, vm.ExitCode)
		return
	}
	s.startSystem(ctx, vm, "restart policy "+string(vm.RestartPolicy))
}

// startSystem starts a VM on the control plane's own initiative.
func (s *Service) startSystem(ctx context.Context, vm *novacron.VM, why string) {
	op, err := s.begin(ctx, vm, novacron.ActionStart, "")
	if err != nil {
		s.log.Warn("automatic start", "vm", vm.ID, "why", why, "err", err)
		return
	}
	s.log.Info("starting vm", "vm", vm.ID, "name", vm.Name, "why", why)
	s.run(op, func(ctx context.Context) error { return s.doStart(ctx, vm, op) })
}

// autostart starts the autostart VMs of a node that has just booted.
func (s *Service) autostart(ctx context.Context, nodeID string) {
	vms, err := s.allVMs(ctx, nodeID)
	if err != nil {
		s.log.Warn("autostart: list VMs", "err", err)
		return
	}
	for _, vm := range vms {
		if vm.Autostart && vm.OperationID == "" && (vm.State == novacron.StateStopped || vm.State == novacron.StateFailed) {
			s.startSystem(ctx, vm, "autostart")
		}
	}
}
