package vm

import (
	"context"
	"sync"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
)

// StateDeleted is the state the last vm_state event of a deleted VM
// carries. No VM is ever in it: the VM is gone.
const StateDeleted novacron.VMState = "deleted"

// The service publishes on Config.Events (DESIGN.md rule 3: every state
// change and every operation's end is an event):
//
//   - vm_state, whenever a VM's observed state (or its reason) changes: the
//     VM as GET /api/vm/vms/{id} shows it, for its tenant;
//   - operation, when an operation starts and when it ends: the operation
//     as GET /api/operations/{id} shows it, for its VM's tenant;
//   - node, when a node is added or its status changes: the node as GET
//     /api/nodes/{id} shows it, for operators and admins (the audience of
//     GET /api/nodes).
//
// Events are read back from the store so that they carry what the API
// would answer; nothing is read while no one subscribes.

// publishVM publishes vm's current state. fallback is sent when the VM can
// no longer be read.
func (s *Service) publishVM(ctx context.Context, fallback *novacron.VM) {
	if s.cfg.Events.Subscribers() == 0 {
		return
	}
	v, err := s.store.GetVM(context.WithoutCancel(ctx), novacron.AllTenants, fallback.ID)
	if err != nil {
		c := *fallback
		v = &c
	}
	s.cfg.Events.Publish(events.Event{Type: events.TypeVMState, Data: v, TenantID: v.TenantID, VMID: v.ID})
}

// publishDeleted publishes the end of a deleted VM.
func (s *Service) publishDeleted(vm *novacron.VM) {
	if s.cfg.Events.Subscribers() == 0 {
		return
	}
	c := *vm
	c.State, c.OperationID, c.StateReason = StateDeleted, "", ""
	c.UpdatedAt = s.cfg.Now().UTC()
	s.cfg.Events.Publish(events.Event{Type: events.TypeVMState, Data: &c, TenantID: c.TenantID, VMID: c.ID})
}

// publishOperation publishes an operation as the store has it.
func (s *Service) publishOperation(ctx context.Context, op *novacron.Operation) {
	if s.cfg.Events.Subscribers() == 0 {
		return
	}
	o, err := s.store.GetOperation(context.WithoutCancel(ctx), novacron.AllTenants, op.ID)
	if err != nil {
		c := *op
		o = &c
	}
	s.cfg.Events.Publish(events.Event{Type: events.TypeOperation, Data: o, TenantID: o.TenantID, VMID: o.VMID})
}

// ended counts and publishes an operation the store has just finished.
func (s *Service) ended(ctx context.Context, op *novacron.Operation, status novacron.OpStatus, msg string) {
	s.ops.add(op.Action, status)
	done := s.cfg.Now().UTC()
	c := *op
	c.Status, c.Error, c.FinishedAt = status, msg, &done
	s.publishOperation(ctx, &c)
}

// publishNode publishes a node as the store has it.
func (s *Service) publishNode(ctx context.Context, n *novacron.Node) {
	if s.cfg.Events.Subscribers() == 0 {
		return
	}
	if got, err := s.store.GetNode(context.WithoutCancel(ctx), n.ID); err == nil {
		n = got
	}
	s.cfg.Events.Publish(events.Event{Type: events.TypeNode, Data: n, Operators: true})
}

// OpCount is the number of operations that ended with one result.
type OpCount struct {
	Action string
	Status novacron.OpStatus
	N      uint64
}

// opCounter counts the operations this service ended, by action and
// result, since it started.
type opCounter struct {
	mu sync.Mutex
	n  map[[2]string]uint64
}

func (c *opCounter) add(action string, status novacron.OpStatus) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[[2]string]uint64{}
	}
	c.n[[2]string{action, string(status)}]++
	c.mu.Unlock()
}

// OperationsEnded returns how many operations this service has ended since
// it started, by action and result (succeeded or failed).
func (s *Service) OperationsEnded() []OpCount {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	out := make([]OpCount, 0, len(s.ops.n))
	for k, n := range s.ops.n {
		out = append(out, OpCount{Action: k[0], Status: novacron.OpStatus(k[1]), N: n})
	}
	return out
}
