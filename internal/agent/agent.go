// Package agent is the node agent: it holds the node's drivers, keeps a
// record of every guest it created (so guests and their uids survive an
// agent restart), assigns each guest its own unprivileged uid, and serves
// the node API the control plane calls through package nodeclient.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/atomicfile"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/nodeclient"
)

// Config configures an agent.
type Config struct {
	// Dir is where the agent keeps its guest records.
	Dir string
	// NodeName is the node's name (the host name by default).
	NodeName string
	// UIDMin and UIDMax bound the unprivileged uids given to guests.
	UIDMin, UIDMax int
	Drivers        []driver.Driver
	// Images is where the agent fetches images it has not cached.
	Images ImageSource
	Logger *slog.Logger
}

// Agent is a node agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	drivers map[string]driver.Driver

	freshBoot bool
	imageMu   sync.Mutex

	mu     sync.Mutex
	guests map[string]*record
	locks  map[string]*sync.Mutex
}

// record is what the agent keeps of a guest on disk.
type record struct {
	Driver string      `json:"driver"`
	Spec   driver.Spec `json:"spec"`
}

var _ nodeclient.Client = (*Agent)(nil)

// New opens an agent and loads its guest records.
func New(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent: host name: %w", err)
		}
		cfg.NodeName = h
	}
	if cfg.UIDMin <= 0 {
		cfg.UIDMin, cfg.UIDMax = 200000, 265535
	}
	if cfg.UIDMax < cfg.UIDMin || cfg.UIDMin < 1000 {
		return nil, fmt.Errorf("agent: bad uid range %d-%d", cfg.UIDMin, cfg.UIDMax)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "guests"), 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var err error
	a := &Agent{cfg: cfg, log: cfg.Logger, drivers: map[string]driver.Driver{},
		guests: map[string]*record{}, locks: map[string]*sync.Mutex{}}
	for _, d := range cfg.Drivers {
		a.drivers[d.Name()] = d
	}
	if a.freshBoot, err = checkBoot(filepath.Join(cfg.Dir, "boot_id")); err != nil {
		return nil, err
	}
	var entries []os.DirEntry
	entries, err = os.ReadDir(filepath.Join(cfg.Dir, "guests"))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(cfg.Dir, "guests", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			a.log.Error("unreadable guest record, ignored", "guest", id, "err", err)
			continue
		}
		a.guests[id] = &r
	}
	return a, nil
}

// Name is the node's name.
func (a *Agent) Name() string { return a.cfg.NodeName }

// lock serialises calls on one guest.
func (a *Agent) lock(id string) func() {
	a.mu.Lock()
	l := a.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		a.locks[id] = l
	}
	a.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (a *Agent) guest(id string) (*record, driver.Driver, error) {
	a.mu.Lock()
	r := a.guests[id]
	a.mu.Unlock()
	if r == nil {
		return nil, nil, novacron.Errorf(novacron.ENotFound, "guest %s not found on node %s", id, a.cfg.NodeName)
	}
	d := a.drivers[r.Driver]
	if d == nil {
		return nil, nil, fmt.Errorf("guest %s: driver %s is not loaded on this node", id, r.Driver)
	}
	return r, d, nil
}

func (a *Agent) driverFor(name string) (driver.Driver, error) {
	d := a.drivers[name]
	if d == nil {
		return nil, novacron.FieldError("driver", "driver %q is not available on node %s", name, a.cfg.NodeName)
	}
	return d, nil
}

// Info describes the node.
func (a *Agent) Info(context.Context) (nodeclient.NodeInfo, error) {
	info := nodeclient.NodeInfo{Name: a.cfg.NodeName, CPUs: runtime.NumCPU(), Drivers: map[string]driver.Capabilities{}}
	for name, d := range a.drivers {
		info.Drivers[name] = d.Capabilities()
	}
	info.MemoryMB = hostMemoryMB()
	info.FreshBoot = a.freshBoot
	return info, nil
}

// ValidateConfig checks a VM's driver config.
func (a *Agent) ValidateConfig(_ context.Context, name string, config json.RawMessage) error {
	d, err := a.driverFor(name)
	if err != nil {
		return err
	}
	return d.ValidateConfig(config)
}

// CreateGuest records a guest, gives it a uid and has its driver prepare it.
func (a *Agent) CreateGuest(ctx context.Context, spec nodeclient.GuestSpec) error {
	if _, err := uuid.Parse(spec.ID); err != nil {
		return novacron.FieldError("id", "must be a UUID")
	}
	d, err := a.driverFor(spec.Driver)
	if err != nil {
		return err
	}
	unlock := a.lock(spec.ID)
	defer unlock()
	if err := a.resolveImages(ctx, &spec); err != nil {
		return err
	}
	a.mu.Lock()
	r := a.guests[spec.ID]
	if r == nil {
		uid, err := a.allocUID()
		if err != nil {
			a.mu.Unlock()
			return err
		}
		spec.UID, spec.GID = uid, uid
		r = &record{Driver: spec.Driver, Spec: spec.Spec}
	} else {
		if r.Driver != spec.Driver {
			a.mu.Unlock()
			return novacron.Errorf(novacron.EConflict, "guest %s exists with driver %s", spec.ID, r.Driver)
		}
		// Keep the uid; take the new resources.
		uid := r.Spec.UID
		r = &record{Driver: spec.Driver, Spec: spec.Spec}
		r.Spec.UID, r.Spec.GID = uid, uid
	}
	a.guests[spec.ID] = r
	a.mu.Unlock()
	if err := a.save(spec.ID, r); err != nil {
		return err
	}
	return d.Create(ctx, r.Spec)
}

// allocUID returns the lowest uid of the range no guest holds. The caller
// holds a.mu.
func (a *Agent) allocUID() (int, error) {
	used := map[int]bool{}
	for _, r := range a.guests {
		used[r.Spec.UID] = true
	}
	for uid := a.cfg.UIDMin; uid <= a.cfg.UIDMax; uid++ {
		if !used[uid] {
			return uid, nil
		}
	}
	return 0, novacron.Errorf(novacron.ENoCapacity, "node %s has no free guest uid", a.cfg.NodeName)
}

func (a *Agent) save(id string, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(a.cfg.Dir, "guests", id+".json"), b, 0o600); err != nil {
		return fmt.Errorf("agent: save guest: %w", err)
	}
	return nil
}

// StartGuest starts a guest.
func (a *Agent) StartGuest(ctx context.Context, id string) error {
	unlock := a.lock(id)
	defer unlock()
	r, d, err := a.guest(id)
	if err != nil {
		return err
	}
	// Re-create what a host reboot or a cleanup may have removed.
	if err := d.Create(ctx, r.Spec); err != nil {
		return err
	}
	return d.Start(ctx, r.Spec)
}

// StopGuest stops a guest.
func (a *Agent) StopGuest(ctx context.Context, id string, timeout time.Duration, force bool) error {
	unlock := a.lock(id)
	defer unlock()
	_, d, err := a.guest(id)
	if err != nil {
		return err
	}
	return d.Stop(ctx, id, timeout, force)
}

func (a *Agent) pauser(id string) (driver.Pauser, error) {
	r, d, err := a.guest(id)
	if err != nil {
		return nil, err
	}
	p, ok := d.(driver.Pauser)
	if !ok {
		return nil, novacron.Errorf(novacron.EInvalidState, "driver %s cannot pause guests", r.Driver)
	}
	return p, nil
}

// PauseGuest freezes a guest.
func (a *Agent) PauseGuest(ctx context.Context, id string) error {
	unlock := a.lock(id)
	defer unlock()
	p, err := a.pauser(id)
	if err != nil {
		return err
	}
	return p.Pause(ctx, id)
}

// ResumeGuest thaws a guest.
func (a *Agent) ResumeGuest(ctx context.Context, id string) error {
	unlock := a.lock(id)
	defer unlock()
	p, err := a.pauser(id)
	if err != nil {
		return err
	}
	return p.Resume(ctx, id)
}

// DeleteGuest removes a guest and its record.
func (a *Agent) DeleteGuest(ctx context.Context, id string) error {
	unlock := a.lock(id)
	defer unlock()
	_, d, err := a.guest(id)
	if novacron.IsCode(err, novacron.ENotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := d.Delete(ctx, id); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(a.cfg.Dir, "guests", id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent: remove guest record: %w", err)
	}
	a.mu.Lock()
	delete(a.guests, id)
	delete(a.locks, id)
	a.mu.Unlock()
	return nil
}

// GuestStatus reports a guest's state.
func (a *Agent) GuestStatus(ctx context.Context, id string) (driver.Status, error) {
	_, d, err := a.guest(id)
	if err != nil {
		return driver.Status{}, err
	}
	return d.Status(ctx, id)
}

// ListGuests lists every guest of every driver, recorded or not: a guest a
// driver holds without a record is listed too, so that it can be reported.
func (a *Agent) ListGuests(ctx context.Context) ([]nodeclient.Guest, error) {
	var out []nodeclient.Guest
	seen := map[string]bool{}
	names := make([]string, 0, len(a.drivers))
	for n := range a.drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		ids, err := a.drivers[name].List(ctx)
		if err != nil {
			return nil, fmt.Errorf("agent: list %s guests: %w", name, err)
		}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			g := nodeclient.Guest{ID: id, Driver: name}
			if g.Status, err = a.drivers[name].Status(ctx, id); err != nil {
				if novacron.IsCode(err, novacron.ENotFound) {
					continue // deleted since it was listed
				}
				a.log.Warn("guest status", "guest", id, "driver", name, "err", err)
				g.Err = err.Error()
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// GuestLogs returns the tail of a guest's output.
func (a *Agent) GuestLogs(ctx context.Context, id string, tail int) ([]byte, error) {
	r, d, err := a.guest(id)
	if err != nil {
		return nil, err
	}
	lr, ok := d.(driver.LogReader)
	if !ok {
		return nil, novacron.Errorf(novacron.EInvalid, "driver %s keeps no logs", r.Driver)
	}
	return lr.Logs(ctx, id, tail)
}

// hostMemoryMB reads MemTotal from /proc/meminfo (0 when unknown).
func hostMemoryMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb / 1024
		}
	}
	return 0
}

// checkBoot reports whether the host booted since the agent last recorded
// the kernel's boot id in path, and records the current one.
func checkBoot(path string) (bool, error) {
	cur, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return false, fmt.Errorf("agent: boot id: %w", err)
	}
	prev, err := os.ReadFile(path)
	if err == nil && string(prev) == string(cur) {
		return false, nil
	}
	if err := os.WriteFile(path, cur, 0o600); err != nil {
		return false, fmt.Errorf("agent: record boot id: %w", err)
	}
	return true, nil
}

// RestartGuest resets a guest in place.
func (a *Agent) RestartGuest(ctx context.Context, id string) error {
	unlock := a.lock(id)
	defer unlock()
	r, d, err := a.guest(id)
	if err != nil {
		return err
	}
	rs, ok := d.(driver.Restarter)
	if !ok {
		return novacron.Errorf(novacron.EInvalidState, "driver %s cannot restart guests in place", r.Driver)
	}
	return rs.Restart(ctx, id)
}

// GuestConsole connects to a guest's console.
func (a *Agent) GuestConsole(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	r, d, err := a.guest(id)
	if err != nil {
		return nil, err
	}
	c, ok := d.(driver.Consoler)
	if !ok {
		return nil, novacron.Errorf(novacron.EInvalid, "%s guests have no console", r.Driver)
	}
	return c.Console(ctx, id)
}

// GuestStats samples a guest's resource use.
func (a *Agent) GuestStats(ctx context.Context, id string) (driver.Stats, error) {
	r, d, err := a.guest(id)
	if err != nil {
		return driver.Stats{}, err
	}
	sr, ok := d.(driver.StatsReader)
	if !ok {
		return driver.Stats{}, novacron.Errorf(novacron.EInvalid, "driver %s keeps no stats", r.Driver)
	}
	return sr.Stats(ctx, id)
}

// WatchGuests runs the Watch of every driver that has one until ctx ends.
func (a *Agent) WatchGuests(ctx context.Context, changed func(id string)) {
	var wg sync.WaitGroup
	for _, d := range a.drivers {
		if w, ok := d.(driver.Watcher); ok {
			wg.Go(func() { w.Watch(ctx, changed) })
		}
	}
	wg.Wait()
}

// FollowGuestLogs follows a guest's output.
func (a *Agent) FollowGuestLogs(ctx context.Context, id string, tail int, w io.Writer) error {
	r, d, err := a.guest(id)
	if err != nil {
		return err
	}
	f, ok := d.(driver.LogFollower)
	if !ok {
		return novacron.Errorf(novacron.EInvalid, "the logs of %s guests cannot be followed", r.Driver)
	}
	return f.FollowLogs(ctx, id, tail, w)
}

func (a *Agent) execer(id string) (driver.Execer, error) {
	r, d, err := a.guest(id)
	if err != nil {
		return nil, err
	}
	e, ok := d.(driver.Execer)
	if !ok {
		return nil, novacron.Errorf(novacron.EInvalid, "%s guests cannot run commands", r.Driver)
	}
	return e, nil
}

// ExecGuest runs a command in a guest. It does not hold the guest's lock:
// a command may run for long, beside the guest's lifecycle.
func (a *Agent) ExecGuest(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecResult, error) {
	e, err := a.execer(id)
	if err != nil {
		return driver.ExecResult{}, err
	}
	return e.Exec(ctx, id, req)
}

// ExecGuestInteractive starts a command in a guest.
func (a *Agent) ExecGuestInteractive(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecSession, error) {
	e, err := a.execer(id)
	if err != nil {
		return nil, err
	}
	return e.ExecInteractive(ctx, id, req)
}
