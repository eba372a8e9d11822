package vm

import (
	"context"
	"fmt"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// Time limits of node calls.
const (
	createTimeout = 2 * time.Minute
	startTimeout  = 2 * time.Minute
	pauseTimeout  = 30 * time.Second
)

func (s *Service) phase(ctx context.Context, op *novacron.Operation, phase string) {
	if err := s.store.SetOperationPhase(ctx, op.ID, phase); err != nil {
		s.log.Warn("record operation phase", "operation", op.ID, "phase", phase, "err", err)
	}
}

// doCreate creates the guest. A guest that cannot be created leaves
// nothing behind: its remnants on the node and the VM row are removed, and
// the operation records why.
func (s *Service) doCreate(ctx context.Context, vm *novacron.VM, op *novacron.Operation, start bool) error {
	node, err := s.node(vm.NodeID)
	if err != nil {
		return s.abandonCreate(vm, err)
	}
	s.phase(ctx, op, "create-guest")
	spec, err := s.specOf(ctx, vm)
	if err != nil {
		return s.abandonCreate(vm, err)
	}
	cctx, cancel := context.WithTimeout(ctx, createTimeout)
	err = node.client.CreateGuest(cctx, spec)
	cancel()
	if err != nil {
		return s.abandonCreate(vm, err)
	}
	s.setState(ctx, vm, novacron.StateStopped, "", nil)
	if !start {
		return nil
	}
	s.setState(ctx, vm, novacron.StateStarting, "", nil)
	return s.startGuest(ctx, vm, op)
}

// abandonCreate undoes a failed create.
func (s *Service) abandonCreate(vm *novacron.VM, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), createTimeout)
	defer cancel()
	if node, err := s.node(vm.NodeID); err == nil {
		if err := node.client.DeleteGuest(ctx, vm.ID); err != nil {
			s.log.Error("clean up a failed create", "vm", vm.ID, "err", err)
		}
	}
	if err := s.store.DeleteVM(ctx, vm.ID); err != nil && !novacron.IsCode(err, novacron.ENotFound) {
		s.log.Error("remove the VM of a failed create", "vm", vm.ID, "err", err)
	} else {
		s.publishDeleted(vm)
	}
	return fmt.Errorf("create: %w", cause)
}

func (s *Service) doStart(ctx context.Context, vm *novacron.VM, op *novacron.Operation) error {
	s.setState(ctx, vm, novacron.StateStarting, "", nil)
	return s.startGuest(ctx, vm, op)
}

// startGuest (re)creates the guest with the VM's current spec, starts it
// and records running, or failed with the reason.
func (s *Service) startGuest(ctx context.Context, vm *novacron.VM, op *novacron.Operation) error {
	node, err := s.node(vm.NodeID)
	if err != nil {
		s.setState(ctx, vm, novacron.StateFailed, err.Error(), nil)
		return err
	}
	s.phase(ctx, op, "start-guest")
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	spec, err := s.specOf(ctx, vm)
	if err == nil {
		err = node.client.CreateGuest(sctx, spec)
	}
	if err == nil {
		err = node.client.StartGuest(sctx, vm.ID)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		var exit *int
		if st, serr := node.client.GuestStatus(ctx, vm.ID); serr == nil {
			exit = st.ExitCode
		}
		s.setState(ctx, vm, novacron.StateFailed, "start failed: "+publicError(err), exit)
		return err
	}
	s.setState(ctx, vm, novacron.StateRunning, "", nil)
	return nil
}

// stopGuest stops the guest and returns its final status.
func (s *Service) stopGuest(ctx context.Context, vm *novacron.VM, timeout time.Duration, force bool) (driver.Status, error) {
	node, err := s.node(vm.NodeID)
	if err != nil {
		return driver.Status{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	if err := node.client.StopGuest(sctx, vm.ID, timeout, force); err != nil && !novacron.IsCode(err, novacron.ENotFound) {
		return driver.Status{}, err
	}
	st, err := node.client.GuestStatus(ctx, vm.ID)
	if novacron.IsCode(err, novacron.ENotFound) {
		return driver.Status{State: driver.GuestExited}, nil
	}
	return st, err
}

func (s *Service) doStop(ctx context.Context, vm *novacron.VM, op *novacron.Operation, timeout time.Duration, force bool) error {
	s.phase(ctx, op, "stop-guest")
	st, err := s.stopGuest(ctx, vm, timeout, force)
	if err != nil {
		if ctx.Err() == nil {
			s.observe(ctx, vm, "stop failed: "+publicError(err))
		}
		return err
	}
	s.setState(ctx, vm, novacron.StateStopped, "", st.ExitCode)
	return nil
}

// doRestart resets the guest in place when its driver can (a QEMU guest's
// hardware reset); otherwise, or when the guest no longer runs, it stops
// and starts it.
func (s *Service) doRestart(ctx context.Context, vm *novacron.VM, op *novacron.Operation, timeout time.Duration) error {
	node, err := s.node(vm.NodeID)
	if err != nil {
		return err
	}
	if node.info.Drivers[vm.Driver].Restart {
		s.phase(ctx, op, "reset-guest")
		rctx, cancel := context.WithTimeout(ctx, pauseTimeout)
		err := node.client.RestartGuest(rctx, vm.ID)
		cancel()
		if err == nil {
			s.setState(ctx, vm, novacron.StateRunning, "", nil)
			return nil
		}
		if !novacron.IsCode(err, novacron.EInvalidState) {
			if ctx.Err() == nil {
				s.observe(ctx, vm, "restart failed: "+publicError(err))
			}
			return err
		}
	}
	s.phase(ctx, op, "stop-guest")
	if _, err := s.stopGuest(ctx, vm, timeout, false); err != nil {
		if ctx.Err() == nil {
			s.observe(ctx, vm, "restart failed: "+publicError(err))
		}
		return err
	}
	return s.startGuest(ctx, vm, op)
}

func (s *Service) doPause(ctx context.Context, vm *novacron.VM, op *novacron.Operation, pause bool) error {
	node, err := s.node(vm.NodeID)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	if pause {
		s.phase(ctx, op, "pause-guest")
		err = node.client.PauseGuest(pctx, vm.ID)
	} else {
		s.phase(ctx, op, "resume-guest")
		err = node.client.ResumeGuest(pctx, vm.ID)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.observe(ctx, vm, "")
		}
		return err
	}
	if pause {
		s.setState(ctx, vm, novacron.StatePaused, "", nil)
	} else {
		s.setState(ctx, vm, novacron.StateRunning, "", nil)
	}
	return nil
}

// doDelete stops the guest if it ran, removes it from its node and then the
// VM row. If the node fails, the VM keeps existing, in the state the node
// shows, so the delete can be retried.
func (s *Service) doDelete(ctx context.Context, vm *novacron.VM, op *novacron.Operation, was novacron.VMState) error {
	if was == novacron.StateRunning || was == novacron.StatePaused || was == novacron.StateFailed {
		s.phase(ctx, op, "stop-guest")
		if _, err := s.stopGuest(ctx, vm, s.cfg.StopTimeout, false); err != nil {
			if ctx.Err() == nil {
				s.observe(ctx, vm, "delete failed: "+publicError(err))
			}
			return err
		}
	}
	s.phase(ctx, op, "delete-guest")
	node, err := s.node(vm.NodeID)
	if err != nil {
		return err
	}
	if err := node.client.DeleteGuest(ctx, vm.ID); err != nil {
		if ctx.Err() == nil {
			s.observe(ctx, vm, "delete failed: "+publicError(err))
		}
		return err
	}
	if err := s.store.DeleteVM(ctx, vm.ID); err != nil && !novacron.IsCode(err, novacron.ENotFound) {
		return err
	}
	s.publishDeleted(vm)
	s.log.Info("vm deleted", "vm", vm.ID, "name", vm.Name)
	return nil
}

// observe sets a VM's state from what its node reports, after an action
// failed half-way. reason, when set, is recorded on a failed VM.
func (s *Service) observe(ctx context.Context, vm *novacron.VM, reason string) {
	node, err := s.node(vm.NodeID)
	if err != nil {
		s.setState(ctx, vm, novacron.StateFailed, reason, nil)
		return
	}
	st, err := node.client.GuestStatus(ctx, vm.ID)
	if err != nil {
		s.setState(ctx, vm, novacron.StateFailed, reason, nil)
		return
	}
	state, why, exit := fromGuest(st)
	if state == novacron.StateFailed && reason != "" {
		why = reason
	}
	s.setState(ctx, vm, state, why, exit)
}

// fromGuest maps a guest's status to the VM state it means.
func fromGuest(st driver.Status) (novacron.VMState, string, *int) {
	switch st.State {
	case driver.GuestRunning:
		return novacron.StateRunning, "", nil
	case driver.GuestPaused:
		return novacron.StatePaused, "", nil
	case driver.GuestCreated:
		return novacron.StateStopped, "", nil
	}
	if st.ExitCode != nil && *st.ExitCode == 0 {
		return novacron.StateStopped, reasonOr(st.Reason, "exited with code 0"), st.ExitCode
	}
	return novacron.StateFailed, reasonOr(st.Reason, "exited"), st.ExitCode
}

func reasonOr(r, def string) string {
	if r != "" {
		return r
	}
	return def
}
