// Package fake is a complete in-memory driver for testing what sits above
// drivers (the agent, reconcile, the VM service). Guests "run" until they
// are stopped or told to exit; nothing touches the host. Its behaviour comes
// from each guest's config and from test hooks: Exit makes a guest exit with
// a code, FailNext makes the next call of a method fail, SetDelay slows a
// method down.
//
// A guest's config (strict, every field optional):
//
//	{"exit_after_ms": 50, "exit_code": 3, "ignore_stop": true, "output": "hello\n"}
//
// exit_after_ms makes the guest exit by itself (with exit_code) that long
// after each start; ignore_stop makes it ignore a graceful stop, so Stop
// kills it after its timeout; output is what the guest prints at each start.
package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// Config is a fake guest's driver config.
type Config struct {
	ExitAfterMS int64  `json:"exit_after_ms,omitempty"`
	ExitCode    int    `json:"exit_code,omitempty"`
	IgnoreStop  bool   `json:"ignore_stop,omitempty"`
	Output      string `json:"output,omitempty"`
}

// Methods, as named for FailNext, SetDelay and Calls.
const (
	MethodCreate = "Create"
	MethodStart  = "Start"
	MethodStop   = "Stop"
	MethodStatus = "Status"
	MethodPause  = "Pause"
	MethodResume = "Resume"
	MethodDelete = "Delete"
	MethodLogs   = "Logs"
	MethodList   = "List"
)

// Exit codes and reasons of a stopped guest, as a real process shows them.
const (
	sigTERM = 15
	sigKILL = 9
)

// Driver is an in-memory driver. The zero value is not usable: call New.
type Driver struct {
	name string

	mu      sync.Mutex
	guests  map[string]*guest
	fail    map[string][]error
	delay   map[string]time.Duration
	calls   map[string]int
	nextPID int
}

type guest struct {
	spec      driver.Spec
	cfg       Config
	state     driver.GuestState
	pid       int
	exitCode  *int
	reason    string
	startedAt time.Time
	exitedAt  time.Time
	output    bytes.Buffer
	// exited is closed when the current run ends; timer ends it by itself.
	exited chan struct{}
	timer  *time.Timer
	// pendingExit: the timer fired while the guest was paused.
	pendingExit bool
	// execExit is the exit code of the commands run in it, execRunning
	// how many interactive ones run (exec.go).
	execExit    int
	execRunning int
}

var (
	_ driver.Driver    = (*Driver)(nil)
	_ driver.Pauser    = (*Driver)(nil)
	_ driver.LogReader = (*Driver)(nil)
)

// New returns a fake driver called name ("fake" when empty).
func New(name string) *Driver {
	if name == "" {
		name = "fake"
	}
	return &Driver{name: name, guests: map[string]*guest{}, fail: map[string][]error{},
		delay: map[string]time.Duration{}, calls: map[string]int{}, nextPID: 10000}
}

// Name is the name given to New.
func (d *Driver) Name() string { return d.name }

// Capabilities: pause, logs (followed too) and commands run in a guest
// (exec.go).
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Pause: true, Logs: true, FollowLogs: true, Exec: true}
}

// FailNext makes the next call of method (MethodStart …) return err
// instead of doing anything. Errors queue up: each call takes one.
func (d *Driver) FailNext(method string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail[method] = append(d.fail[method], err)
}

// SetDelay makes every later call of method wait delay first (or until its
// context ends); 0 removes the delay.
func (d *Driver) SetDelay(method string, delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay[method] = delay
}

// Calls returns how many times method was called.
func (d *Driver) Calls(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[method]
}

// Exit makes a running or paused guest exit by itself with code, as a
// process that returned it. It is ENotFound for an unknown guest and
// EInvalidState for one that does not run.
func (d *Driver) Exit(id string, code int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return notFound(id)
	}
	if g.state != driver.GuestRunning && g.state != driver.GuestPaused {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is %s", id, g.state)
	}
	g.end(code, fmt.Sprintf("exited with code %d", code))
	return nil
}

// Spec returns the spec a guest was last created or started with.
func (d *Driver) Spec(id string) (driver.Spec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return driver.Spec{}, false
	}
	return g.spec, true
}

// enter counts a call, applies its delay and returns the failure queued
// for it.
func (d *Driver) enter(ctx context.Context, method string) error {
	d.mu.Lock()
	d.calls[method]++
	delay := d.delay[method]
	var err error
	if q := d.fail[method]; len(q) > 0 {
		err, d.fail[method] = q[0], q[1:]
	}
	d.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func notFound(id string) error {
	return novacron.Errorf(novacron.ENotFound, "guest %s not found", id)
}

// ValidateConfig strictly checks a fake guest's config.
func (d *Driver) ValidateConfig(config json.RawMessage) error {
	_, err := parseConfig(config)
	return err
}

func parseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return c, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return c, novacron.FieldError("config", "must be a JSON object")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var err error
		switch k {
		case "exit_after_ms":
			err = json.Unmarshal(fields[k], &c.ExitAfterMS)
			if err == nil && c.ExitAfterMS < 0 {
				return c, novacron.FieldError("config.exit_after_ms", "must not be negative")
			}
		case "exit_code":
			err = json.Unmarshal(fields[k], &c.ExitCode)
			if err == nil && (c.ExitCode < 0 || c.ExitCode > 255) {
				return c, novacron.FieldError("config.exit_code", "must be between 0 and 255")
			}
		case "ignore_stop":
			err = json.Unmarshal(fields[k], &c.IgnoreStop)
		case "output":
			err = json.Unmarshal(fields[k], &c.Output)
		default:
			return c, novacron.FieldError("config."+k, "unknown field (known: exit_after_ms, exit_code, ignore_stop, output)")
		}
		if err != nil {
			return c, novacron.FieldError("config."+k, "has the wrong type")
		}
	}
	return c, nil
}

// Create records a guest. It is idempotent; a running guest keeps its spec.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	if err := d.enter(ctx, MethodCreate); err != nil {
		return err
	}
	if spec.ID == "" {
		return novacron.FieldError("id", "must be a UUID")
	}
	cfg, err := parseConfig(spec.Config)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[spec.ID]
	if g == nil {
		d.guests[spec.ID] = &guest{spec: spec, cfg: cfg, state: driver.GuestCreated}
		return nil
	}
	if g.running() {
		return nil
	}
	g.spec, g.cfg = spec, cfg
	return nil
}

func (g *guest) running() bool {
	return g.state == driver.GuestRunning || g.state == driver.GuestPaused
}

// end records the end of the current run. The caller holds d.mu.
func (g *guest) end(code int, reason string) {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.state = driver.GuestExited
	g.exitCode = &code
	g.reason = reason
	g.exitedAt = time.Now().UTC()
	g.pid = 0
	g.pendingExit = false
	close(g.exited)
}

// Start starts a created or exited guest with spec.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) error {
	if err := d.enter(ctx, MethodStart); err != nil {
		return err
	}
	cfg, err := parseConfig(spec.Config)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[spec.ID]
	if g == nil {
		return notFound(spec.ID)
	}
	if g.running() {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is already %s", spec.ID, g.state)
	}
	d.nextPID++
	g.spec, g.cfg = spec, cfg
	g.state, g.pid = driver.GuestRunning, d.nextPID
	g.exitCode, g.reason = nil, ""
	g.startedAt, g.exitedAt = time.Now().UTC(), time.Time{}
	g.exited = make(chan struct{})
	g.output.WriteString(cfg.Output)
	if cfg.ExitAfterMS > 0 {
		exited := g.exited
		g.timer = time.AfterFunc(time.Duration(cfg.ExitAfterMS)*time.Millisecond, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			select {
			case <-exited: // this run already ended
			default:
				// A paused guest cannot exit: a real frozen process
				// does not run. It exits once resumed.
				if g.state == driver.GuestPaused {
					g.timer = nil
					g.pendingExit = true
					return
				}
				g.end(cfg.ExitCode, fmt.Sprintf("exited with code %d", cfg.ExitCode))
			}
		})
	}
	return nil
}

// Stop ends the guest: at once when force; else gracefully, unless its
// config says it ignores that, in which case it is killed after timeout.
func (d *Driver) Stop(ctx context.Context, id string, timeout time.Duration, force bool) error {
	if err := d.enter(ctx, MethodStop); err != nil {
		return err
	}
	d.mu.Lock()
	g := d.guests[id]
	if g == nil {
		d.mu.Unlock()
		return notFound(id)
	}
	if !g.running() {
		d.mu.Unlock()
		return nil
	}
	if force || timeout <= 0 {
		g.end(128+sigKILL, fmt.Sprintf("killed by signal %d", sigKILL))
		d.mu.Unlock()
		return nil
	}
	if !g.cfg.IgnoreStop {
		g.end(128+sigTERM, fmt.Sprintf("killed by signal %d", sigTERM))
		d.mu.Unlock()
		return nil
	}
	// The kill comes after timeout even if the caller stops waiting, as a
	// real supervisor's does.
	exited := g.exited
	time.AfterFunc(timeout, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		select {
		case <-exited: // this run already ended
		default:
			g.end(128+sigKILL, fmt.Sprintf("killed by signal %d", sigKILL))
		}
	})
	d.mu.Unlock()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status reports the guest's state.
func (d *Driver) Status(ctx context.Context, id string) (driver.Status, error) {
	if err := d.enter(ctx, MethodStatus); err != nil {
		return driver.Status{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return driver.Status{}, notFound(id)
	}
	st := driver.Status{State: g.state, PID: g.pid, Reason: g.reason, StartedAt: g.startedAt, ExitedAt: g.exitedAt}
	if g.exitCode != nil {
		c := *g.exitCode
		st.ExitCode = &c
	}
	return st, nil
}

// Pause freezes a running guest.
func (d *Driver) Pause(ctx context.Context, id string) error {
	if err := d.enter(ctx, MethodPause); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return notFound(id)
	}
	if g.state != driver.GuestRunning {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is %s, not running", id, g.state)
	}
	g.state = driver.GuestPaused
	return nil
}

// Resume thaws a paused guest.
func (d *Driver) Resume(ctx context.Context, id string) error {
	if err := d.enter(ctx, MethodResume); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return notFound(id)
	}
	if g.state != driver.GuestPaused {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is %s, not paused", id, g.state)
	}
	g.state = driver.GuestRunning
	if g.pendingExit {
		g.pendingExit = false
		g.end(g.cfg.ExitCode, fmt.Sprintf("exited with code %d", g.cfg.ExitCode))
	}
	return nil
}

// Logs returns the last tail lines of everything the guest printed (all of
// it when tail <= 0).
func (d *Driver) Logs(ctx context.Context, id string, tail int) ([]byte, error) {
	if err := d.enter(ctx, MethodLogs); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return nil, notFound(id)
	}
	return lastLines(bytes.Clone(g.output.Bytes()), tail), nil
}

// lastLines returns the last tail lines of b (all of it when tail <= 0).
func lastLines(b []byte, tail int) []byte {
	if tail <= 0 {
		return b
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			tail--
			if tail == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}

// Delete forgets a guest that does not run.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := d.enter(ctx, MethodDelete); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return nil
	}
	if g.running() {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is %s: stop it first", id, g.state)
	}
	delete(d.guests, id)
	return nil
}

// List returns the ids of every guest, sorted.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	if err := d.enter(ctx, MethodList); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.guests))
	for id := range d.guests {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
