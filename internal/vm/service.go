// Package vm is the VM service of the control plane: it validates requests,
// records every asynchronous action as an operation, drives nodes through
// the node client, and reconciles what nodes report with what the database
// says (DESIGN.md rule 2).
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/nodeclient"
)

// Store is what the service needs of the database.
type Store interface {
	novacron.VMStore
	InsertAudit(ctx context.Context, e *novacron.AuditEntry) error
	GetImage(ctx context.Context, scope novacron.Scope, id string) (*novacron.Image, error)
}

// Config configures the service.
type Config struct {
	// AllowUserProcess lets non-admins create process VMs, which run code
	// on the host.
	AllowUserProcess bool
	// StopTimeout is how long a graceful stop waits by default (30s).
	StopTimeout time.Duration
	// ReconcileInterval is how often node state is compared with the
	// database (2s).
	ReconcileInterval time.Duration
	// RestartLimit restarts within RestartWindow make a crash loop that the
	// restart policy gives up on (5 in 5m).
	RestartLimit  int
	RestartWindow time.Duration
	Now           func() time.Time
	// Events, when set, receives vm_state, operation and node events
	// (see events.go).
	Events *events.Bus
}

// Service is the VM service.
type Service struct {
	store Store
	cfg   Config
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	nodes    map[string]*nodeEntry
	local    string
	waiters  map[string][]chan struct{}
	restarts map[string][]time.Time
	orphans  map[string]bool

	ops opCounter
}

type nodeEntry struct {
	node   *novacron.Node
	client nodeclient.Client
	info   nodeclient.NodeInfo
}

// New returns the service. It starts nothing until AddNode.
func New(store Store, cfg Config, log *slog.Logger) *Service {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 2 * time.Second
	}
	if cfg.RestartLimit <= 0 {
		cfg.RestartLimit = 5
	}
	if cfg.RestartWindow <= 0 {
		cfg.RestartWindow = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{store: store, cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		nodes: map[string]*nodeEntry{}, waiters: map[string][]chan struct{}{},
		restarts: map[string][]time.Time{}, orphans: map[string]bool{}}
}

// AddNode registers a node in the database and with the service, settles
// the operations a previous run left half-done on it, reconciles it, starts
// its autostart VMs when the node has just booted, and keeps reconciling it
// until Close. The first node added is the default for new VMs.
func (s *Service) AddNode(ctx context.Context, client nodeclient.Client, address string) (*novacron.Node, error) {
	info, err := client.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("node info: %w", err)
	}
	caps, _ := json.Marshal(info.Drivers)
	res, _ := json.Marshal(map[string]any{"cpus": info.CPUs, "memory_mb": info.MemoryMB})
	n := &novacron.Node{Name: info.Name, Address: address, Status: novacron.NodeOnline,
		Capabilities: caps, Resources: res, LastSeen: s.cfg.Now().UTC()}
	if err := s.store.UpsertNode(ctx, n); err != nil {
		return nil, fmt.Errorf("register node: %w", err)
	}
	s.mu.Lock()
	s.nodes[n.ID] = &nodeEntry{node: n, client: client, info: info}
	if s.local == "" {
		s.local = n.ID
	}
	s.mu.Unlock()

	if err := s.recoverOperations(ctx, n.ID); err != nil {
		return nil, fmt.Errorf("recover operations: %w", err)
	}
	s.reconcileNode(ctx, n.ID)
	if info.FreshBoot {
		s.autostart(ctx, n.ID)
	}
	// The node reports its guests' state changes as they happen (QEMU's
	// events, say): each one reconciles the node at once. The periodic
	// pass catches what no event tells (drivers that cannot watch, a
	// missed event).
	changed := make(chan struct{}, 1)
	s.wg.Go(func() {
		client.WatchGuests(s.ctx, func(string) {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	})
	s.wg.Go(func() {
		t := time.NewTicker(s.cfg.ReconcileInterval)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			case <-changed:
			}
			s.reconcileNode(s.ctx, n.ID)
		}
	})
	s.publishNode(ctx, n)
	s.log.Info("node added", "node", n.Name, "id", n.ID, "drivers", len(info.Drivers), "fresh_boot", info.FreshBoot)
	return n, nil
}

// Drivers lists the drivers of the default node.
func (s *Service) Drivers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.nodes[s.local]
	if e == nil {
		return nil
	}
	out := make([]string, 0, len(e.info.Drivers))
	for name := range e.info.Drivers {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Close stops the reconcile loops and waits for operations in flight; those
// cut short are settled by the next start.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

func (s *Service) node(id string) (*nodeEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.nodes[id]
	if e == nil {
		return nil, novacron.Errorf(novacron.EUnavailable, "node %s is not connected", id)
	}
	return e, nil
}

// specOf is the guest spec of a VM, with references to its images.
func (s *Service) specOf(ctx context.Context, vm *novacron.VM) (nodeclient.GuestSpec, error) {
	spec := nodeclient.GuestSpec{Driver: vm.Driver, Spec: driver.Spec{ID: vm.ID, Name: vm.Name,
		CPUs: vm.CPUs, MemoryMB: vm.MemoryMB, DiskGB: vm.DiskGB, Config: vm.Config}}
	ids, err := imageIDs(vm)
	if err != nil {
		return spec, err
	}
	for _, im := range []struct {
		id  string
		ref **nodeclient.ImageRef
	}{{ids.base, &spec.Images.Base}, {ids.kernel, &spec.Images.Kernel}, {ids.initrd, &spec.Images.Initrd}} {
		if im.id == "" {
			continue
		}
		img, err := s.store.GetImage(ctx, novacron.AllTenants, im.id)
		if err != nil {
			return spec, fmt.Errorf("image %s: %w", im.id, err)
		}
		*im.ref = &nodeclient.ImageRef{ID: img.ID, Format: img.Format, SHA256: img.SHA256, Size: img.Size, Command: img.Command}
	}
	return spec, nil
}

// publicError is the message an operation's failure shows: the coded
// message, or the node's words for a plain error.
func publicError(err error) string {
	var e *novacron.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// Wait blocks until operation id has ended or ctx is done, and returns it.
func (s *Service) Wait(ctx context.Context, scope novacron.Scope, id string) (*novacron.Operation, error) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	defer s.dropWaiter(id, ch)
	// Poll as well: another replica may run the operation.
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		op, err := s.store.GetOperation(ctx, scope, id)
		if err != nil || op.Status != novacron.OpRunning {
			return op, err
		}
		select {
		case <-ctx.Done():
			return op, nil
		case <-ch:
		case <-t.C:
		}
	}
}

func (s *Service) dropWaiter(id string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[id]
	for i, w := range ws {
		if w == ch {
			s.waiters[id] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(s.waiters[id]) == 0 {
		delete(s.waiters, id)
	}
}

func (s *Service) notify(id string) {
	s.mu.Lock()
	ws := s.waiters[id]
	delete(s.waiters, id)
	s.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// run executes an operation in the background, on the service's lifetime:
// a client that disconnects does not cancel it. f records the VM's state;
// run records the operation's end.
func (s *Service) run(op *novacron.Operation, f func(ctx context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := f(s.ctx)
		if s.ctx.Err() != nil && err != nil {
			// Shutting down: the next start settles the operation.
			return
		}
		status, msg := novacron.OpSucceeded, ""
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err != nil {
			status, msg = novacron.OpFailed, publicError(err)
			s.log.Warn("operation failed", "operation", op.ID, "action", op.Action, "vm", op.VMID, "err", err)
			// The request was audited when it was accepted; its failure is
			// audited too, so that it is never silent.
			who := ""
			if op.UserID == "" {
				who = "novacron" // an action the control plane took itself
			}
			if aerr := s.store.InsertAudit(ctx, &novacron.AuditEntry{TS: s.cfg.Now().UTC(), UserID: op.UserID, Username: who,
				TenantID: op.TenantID, Action: "vm." + op.Action, Resource: "vm", ResourceID: op.VMID,
				Success: false, Error: novacron.EOperationFailed + ": " + msg, RequestID: "operation " + op.ID}); aerr != nil {
				s.log.Error("audit a failed operation", "operation", op.ID, "err", aerr)
			}
		}
		if err := s.store.FinishOperation(ctx, op.ID, status, msg); err != nil {
			s.log.Error("finish operation", "operation", op.ID, "err", err)
		} else {
			s.ended(ctx, op, status, msg)
		}
		s.notify(op.ID)
	}()
}

// setState records a VM's observed state, logs the change and publishes
// it.
func (s *Service) setState(ctx context.Context, vm *novacron.VM, state novacron.VMState, reason string, exit *int) {
	if err := s.store.SetVMState(ctx, vm.ID, state, reason, exit); err != nil {
		s.log.Error("record vm state", "vm", vm.ID, "state", state, "err", err)
		return
	}
	changed := vm.State != state || vm.StateReason != reason
	if vm.State != state {
		s.log.Info("vm state", "vm", vm.ID, "name", vm.Name, "from", vm.State, "to", state, "reason", reason)
	}
	vm.State, vm.StateReason, vm.ExitCode = state, reason, exit
	if changed {
		s.publishVM(ctx, vm)
	}
}
