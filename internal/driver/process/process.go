// Package process is the driver of host processes: each guest is a command
// run under its own unprivileged uid and gid, with no new privileges, in its
// own cgroup (CPU, memory and pids limits, the freezer for pause), its
// output in a size-capped, rotated log.
//
// A guest is supervised by a shim: the novacron binary re-executed as the
// hidden `shim` command (RunShim) in its own session, so it outlives the
// agent. The shim creates the guest's cgroup, starts the guest through a
// second re-exec stage that joins the cgroup, drops privileges and execs the
// command (the shim itself stays out of the cgroup: freezing the guest does
// not freeze its supervisor), logs its output, reaps it and writes exit.json.
// The driver talks to a shim over a unix socket with one JSON line each way.
// Everything lives in the guest's directory Dir/<id>/, so a new driver (an
// agent restarted) finds running guests and the exits of the ones that
// ended while no driver was there:
//
//	spec.json   the driver.Spec
//	work/       the guest's working directory (owned by its uid, 0700)
//	logs/       output.log, output.log.1 … output.log.N
//	shim.sock   the shim's control socket (0600)
//	shim.pid    the shim's pid, locked while the shim lives
//	shim.log    the shim's own log
//	exit.json   how the guest ended
package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/atomicfile"
	"github.com/novacron/novacron/internal/driver"
)

// Name is the driver's name.
const Name = novacron.DriverProcess

// Config configures the process driver.
type Config struct {
	// Dir is the driver's own directory (e.g. DATA/guests/process); it
	// holds one directory per guest.
	Dir string
	// ShimCommand runs the shim: the arguments of RunShim are appended.
	// Default: this executable with "shim", [os.Executable(), "shim"].
	ShimCommand []string
	// CgroupParent is the cgroup, below each hierarchy's root, that holds
	// the guests' cgroups (CgroupParent/<id>). Default "novacron".
	CgroupParent string
	// LogMaxBytes caps each output log file (default 8 MiB).
	LogMaxBytes int64
	// LogFiles is how many rotated output logs are kept besides the
	// current one (default 3; negative keeps none).
	LogFiles int
	// PidsMax bounds each guest's processes and threads (default 4096;
	// negative for no limit).
	PidsMax int64
	// Container, when set, makes the guests OCI containers run by runc:
	// the shim runs "runc run" on a bundle that Container.Prepare makes in
	// each guest's directory. The container driver is built this way.
	Container *ContainerRuntime
	Logger    *slog.Logger
}

// ContainerRuntime is what turns the process driver into a driver of OCI
// containers: its name, runc, and how a guest's bundle is made and undone.
type ContainerRuntime struct {
	Name string
	// Runc is the runc binary, RuncRoot runc's state directory.
	Runc, RuncRoot string
	// Validate checks a VM's config, in place of the process driver's.
	Validate func(config json.RawMessage) error
	// Prepare makes the bundle dir/bundle (its config.json naming the
	// cgroup CgroupsPath(CgroupParent, id), and its root file system) on
	// Create and on every Start.
	Prepare func(ctx context.Context, dir string, spec driver.Spec) error
	// Remove undoes what Prepare did outside dir (mounts), before dir is
	// removed.
	Remove func(ctx context.Context, dir string) error
}

// Driver runs host processes as guests.
type Driver struct {
	cfg Config
	log *slog.Logger
}

var (
	_ driver.Driver      = (*Driver)(nil)
	_ driver.Pauser      = (*Driver)(nil)
	_ driver.LogReader   = (*Driver)(nil)
	_ driver.StatsReader = (*Driver)(nil)
)

// New returns a process driver keeping its guests in cfg.Dir, which it
// creates. It does not touch running guests: they are found on disk.
func New(cfg Config) (*Driver, error) {
	if cfg.Dir == "" {
		return nil, errors.New("process driver: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("process driver: %w", err)
	}
	cfg.Dir = dir
	// A unix socket's path holds at most 107 bytes: DIR/<uuid>/shim.sock
	// must fit.
	if n := len(dir) + 1 + 36 + 1 + len(sockFile); n > maxSocketPath {
		return nil, fmt.Errorf("process driver: the directory %s is too long by %d bytes for the guests' unix sockets; use a shorter data directory", dir, n-maxSocketPath)
	}
	if len(cfg.ShimCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("process driver: %w", err)
		}
		cfg.ShimCommand = []string{exe, "shim"}
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "novacron"
	}
	if err := validCgroupParent(cfg.CgroupParent); err != nil {
		return nil, fmt.Errorf("process driver: %w", err)
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = 8 << 20
	}
	switch {
	case cfg.LogFiles == 0:
		cfg.LogFiles = 3
	case cfg.LogFiles < 0:
		cfg.LogFiles = 0
	}
	switch {
	case cfg.PidsMax == 0:
		cfg.PidsMax = 4096
	case cfg.PidsMax < 0:
		cfg.PidsMax = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Guests reach their work directory through it: traversable, not
	// listable.
	if err := os.MkdirAll(cfg.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("process driver: %w", err)
	}
	if c := cfg.Container; c != nil && (c.Name == "" || c.Runc == "" || c.RuncRoot == "" || c.Validate == nil || c.Prepare == nil || c.Remove == nil) {
		return nil, errors.New("process driver: an incomplete container runtime")
	}
	return &Driver{cfg: cfg, log: cfg.Logger.With("driver", nameOf(cfg))}, nil
}

func nameOf(cfg Config) string {
	if cfg.Container != nil {
		return cfg.Container.Name
	}
	return Name
}

// Name is "process", or the container runtime's name.
func (d *Driver) Name() string { return nameOf(d.cfg) }

// Capabilities: pause, logs (followed too) and stats.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Pause: true, Logs: true, FollowLogs: true, Stats: true}
}

// ValidateConfig checks a process VM's config:
//
//	{"command": ["/bin/sleep", "3600"], "env": {"K": "V"}, "cwd": "sub/dir"}
//
// command is required (1 to 256 arguments of at most 4096 bytes, the first
// an absolute path); env has at most 128 entries named like shell
// variables; cwd is a relative path inside the guest's working directory.
func (d *Driver) ValidateConfig(config json.RawMessage) error {
	if d.cfg.Container != nil {
		return d.cfg.Container.Validate(config)
	}
	_, err := parseConfig(config)
	return err
}

// validID reports whether id is a canonical (lower-case) UUID: guest
// directories and cgroups are named after it.
func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// validateSpec checks what Create and Start are given.
func validateSpec(spec driver.Spec) error {
	switch {
	case !validID(spec.ID):
		return novacron.FieldError("id", "must be a UUID")
	case spec.UID <= 0 || spec.UID > 1<<31-1:
		return novacron.Errorf(novacron.EInvalid, "guest %s: uid %d is not an unprivileged uid", spec.ID, spec.UID)
	case spec.GID <= 0 || spec.GID > 1<<31-1:
		return novacron.Errorf(novacron.EInvalid, "guest %s: gid %d is not an unprivileged gid", spec.ID, spec.GID)
	case spec.CPUs < 0 || spec.CPUs > 4096:
		return novacron.FieldError("cpus", "must be between 0 and 4096")
	case spec.MemoryMB < 0 || spec.MemoryMB > 1<<30:
		return novacron.FieldError("memory_mb", "must be between 0 and %d", 1<<30)
	}
	return nil
}

func notFound(id string) error {
	return novacron.Errorf(novacron.ENotFound, "guest %s not found", id)
}

// guestDir returns the directory of an existing guest.
func (d *Driver) guestDir(id string) (string, error) {
	if !validID(id) {
		return "", notFound(id)
	}
	dir := filepath.Join(d.cfg.Dir, id)
	if _, err := os.Stat(filepath.Join(dir, specFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", notFound(id)
		}
		return "", fmt.Errorf("process: %w", err)
	}
	return dir, nil
}

// Create prepares the guest's directory, working directory and spec.json.
// It is idempotent; a running guest's spec is not replaced.
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	if err := validateSpec(spec); err != nil {
		return err
	}
	if err := d.ValidateConfig(spec.Config); err != nil {
		return err
	}
	dir := filepath.Join(d.cfg.Dir, spec.ID)
	if _, err := os.Stat(filepath.Join(dir, specFile)); err == nil {
		st, err := d.Status(ctx, spec.ID)
		if err != nil {
			return err
		}
		if st.State == driver.GuestRunning || st.State == driver.GuestPaused {
			if same, _ := d.sameSpec(dir, spec); same {
				return nil
			}
			return novacron.Errorf(novacron.EInvalidState, "guest %s is %s: its spec cannot change", spec.ID, st.State)
		}
	}
	return d.prepare(ctx, dir, spec)
}

func (d *Driver) sameSpec(dir string, spec driver.Spec) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, specFile))
	if err != nil {
		return false, err
	}
	want, err := json.Marshal(spec)
	if err != nil {
		return false, err
	}
	return bytes.Equal(bytes.TrimSpace(b), want), nil
}

// prepare makes the guest's directories and writes its spec.
func (d *Driver) prepare(ctx context.Context, dir string, spec driver.Spec) error {
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("process: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, logsDir), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("process: %w", err)
	}
	work := filepath.Join(dir, workDir)
	if err := os.Mkdir(work, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("process: %w", err)
	}
	// Lchown: work is ours, but never follow a link someone put there.
	if err := os.Lchown(work, spec.UID, spec.GID); err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if err := os.Chmod(work, 0o700); err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if d.cfg.Container != nil {
		if err := d.cfg.Container.Prepare(ctx, dir, spec); err != nil {
			return err
		}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, specFile), b, 0o600); err != nil {
		return fmt.Errorf("process: write spec: %w", err)
	}
	return nil
}

// Start starts a created or exited guest: it spawns the guest's shim and
// returns once the shim reports the guest running. A command that cannot
// be executed fails the start with the reason ("config.command: /nope: no
// such file or directory").
func (d *Driver) Start(ctx context.Context, spec driver.Spec) error {
	if err := validateSpec(spec); err != nil {
		return err
	}
	if err := d.ValidateConfig(spec.Config); err != nil {
		return err
	}
	dir, err := d.guestDir(spec.ID)
	if err != nil {
		return err
	}
	st, err := d.Status(ctx, spec.ID)
	if err != nil {
		return err
	}
	if st.State == driver.GuestRunning || st.State == driver.GuestPaused {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is already %s", spec.ID, st.State)
	}
	if err := d.waitShimGone(ctx, dir, 5*time.Second); err != nil {
		return err
	}
	if err := d.prepare(ctx, dir, spec); err != nil {
		return err
	}
	// The last run's traces go: until the new shim reports, the guest
	// reads as created, never as the last run's exit.
	for _, f := range []string{exitFile, sockFile, pidFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("process: %w", err)
		}
	}
	return d.spawn(ctx, dir, spec.ID)
}

// shimLogMax caps shim.log; it is cut when a guest starts past it.
const shimLogMax = 1 << 20

// maxSocketPath is the longest path a unix socket address can hold.
const maxSocketPath = 107

// startTimeout bounds how long a shim may take to start its guest.
const startTimeout = 30 * time.Second

func (d *Driver) spawn(ctx context.Context, dir, id string) error {
	shimOut, err := os.OpenFile(filepath.Join(dir, shimLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	defer shimOut.Close()
	if st, err := shimOut.Stat(); err == nil && st.Size() > shimLogMax {
		_ = shimOut.Truncate(0)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	defer readyR.Close()
	args := append(slices.Clone(d.cfg.ShimCommand), "run",
		"--cgroup-parent", d.cfg.CgroupParent,
		"--log-max-bytes", strconv.FormatInt(d.cfg.LogMaxBytes, 10),
		"--log-files", strconv.Itoa(d.cfg.LogFiles),
		"--pids-max", strconv.FormatInt(d.cfg.PidsMax, 10))
	if c := d.cfg.Container; c != nil {
		args = append(args, "--runc", c.Runc, "--runc-root", c.RuncRoot)
	}
	args = append(args, dir)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=" + defaultPath}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = shimOut, shimOut
	cmd.ExtraFiles = []*os.File{readyW}
	// Its own session: the shim outlives the agent and its signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return fmt.Errorf("process: start shim: %w", err)
	}
	readyW.Close()
	// Reap the shim if it ends while this driver lives; once the agent is
	// gone, PID 1 does.
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	msgc := make(chan readyMsg, 1)
	go func() {
		var m readyMsg
		if err := json.NewDecoder(readyR).Decode(&m); err != nil {
			m.Error = "the shim exited before the guest started"
		}
		msgc <- m
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	var m readyMsg
	select {
	case m = <-msgc:
	case <-ctx.Done():
		m.Error = "start cancelled"
	case <-timer.C:
		m.Error = "the shim did not start the guest in time"
	}
	if m.Error == "" {
		d.log.Info("guest started", "guest", id, "pid", m.PID, "shim", cmd.Process.Pid)
		return nil
	}
	// The shim failed: make sure it is gone (its guest dies with it), and
	// leave the guest as it was before.
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	for _, f := range []string{pidFile, sockFile} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	if cg, err := loadCgroup(d.cfg.CgroupParent, id); err == nil {
		_ = killCgroup(cg, 5*time.Second)
		_ = cg.Delete()
	}
	d.log.Warn("guest failed to start", "guest", id, "err", m.Error)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if m.User {
		return &novacron.Error{Code: novacron.EOperationFailed, Message: m.Error, Details: map[string]any{"field": m.Field}}
	}
	return &novacron.Error{Code: novacron.EOperationFailed, Message: "the guest's supervisor failed to start it",
		Err: fmt.Errorf("%s (see %s)", m.Error, filepath.Join(dir, shimLog))}
}

// waitShimGone waits until the guest's shim, whose guest has exited, is
// gone.
func (d *Driver) waitShimGone(ctx context.Context, dir string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		alive, err := shimAlive(filepath.Join(dir, pidFile))
		if err != nil {
			return fmt.Errorf("process: %w", err)
		}
		if !alive {
			return nil
		}
		if time.Now().After(deadline) {
			return novacron.Errorf(novacron.EOperationFailed, "guest %s: its shim does not exit", filepath.Base(dir))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Status reports the guest's state: from its shim while one lives, from
// exit.json after.
func (d *Driver) Status(ctx context.Context, id string) (driver.Status, error) {
	dir, err := d.guestDir(id)
	if err != nil {
		return driver.Status{}, err
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		alive, err := shimAlive(filepath.Join(dir, pidFile))
		if err != nil {
			return driver.Status{}, fmt.Errorf("process: %w", err)
		}
		if alive {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := call(cctx, filepath.Join(dir, sockFile), request{Op: "status"})
			cancel()
			if err == nil && resp.OK {
				return responseStatus(resp), nil
			}
			if err == nil {
				return driver.Status{}, shimError(resp)
			}
			// The shim is ending (exit.json is written before its socket
			// closes) or has not opened its socket yet.
			if rec, ok, rerr := readExit(dir); rerr != nil {
				return driver.Status{}, rerr
			} else if ok {
				return exitedStatus(rec), nil
			}
			if ctx.Err() != nil {
				return driver.Status{}, ctx.Err()
			}
			if time.Now().After(deadline) {
				return driver.Status{}, novacron.Errorf(novacron.EOperationFailed, "guest %s: its shim does not answer", id)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if rec, ok, err := readExit(dir); err != nil {
			return driver.Status{}, err
		} else if ok {
			return exitedStatus(rec), nil
		}
		if _, err := os.Stat(filepath.Join(dir, pidFile)); err == nil {
			// A shim ran but left no exit record: it was killed, or the
			// host rebooted. Its guest died with it.
			return driver.Status{State: driver.GuestExited, Reason: "the guest's supervisor ended without recording its exit"}, nil
		}
		return driver.Status{State: driver.GuestCreated}, nil
	}
}

func readExit(dir string) (exitRecord, bool, error) {
	var rec exitRecord
	b, err := os.ReadFile(filepath.Join(dir, exitFile))
	if errors.Is(err, os.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("process: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, fmt.Errorf("process: %s: %w", exitFile, err)
	}
	return rec, true, nil
}

func exitedStatus(rec exitRecord) driver.Status {
	code := rec.ExitCode
	return driver.Status{State: driver.GuestExited, ExitCode: &code, Reason: rec.Reason,
		StartedAt: rec.StartedAt, ExitedAt: rec.ExitedAt}
}

func responseStatus(resp response) driver.Status {
	if resp.Exit != nil {
		return exitedStatus(*resp.Exit)
	}
	return driver.Status{State: resp.State, PID: resp.PID, StartedAt: resp.StartedAt}
}

// shimError turns a shim's refusal into a coded error.
func shimError(resp response) error {
	code := resp.Code
	if code == "" {
		code = novacron.EOperationFailed
	}
	return novacron.Errorf(code, "%s", resp.Error)
}

// Stop ends the guest through its shim: SIGTERM to the guest's process
// group, SIGKILL to everything in its cgroup after timeout (at once when
// force). It returns once the guest has exited; a guest whose shim is gone
// has exited already.
func (d *Driver) Stop(ctx context.Context, id string, timeout time.Duration, force bool) error {
	dir, err := d.guestDir(id)
	if err != nil {
		return err
	}
	pf := filepath.Join(dir, pidFile)
	alive, err := shimAlive(pf)
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if alive {
		resp, err := call(ctx, filepath.Join(dir, sockFile), request{Op: "stop", TimeoutMS: timeout.Milliseconds(), Force: force})
		if err == nil && !resp.OK {
			return shimError(resp)
		}
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		// Answered, or the shim was ending anyway: wait until it is gone.
		return d.waitShimGone(ctx, dir, timeout+10*time.Second)
	}
	// No shim: its guest is gone; kill whatever it may have left behind.
	if cg, err := loadCgroup(d.cfg.CgroupParent, id); err == nil {
		if err := killCgroup(cg, 5*time.Second); err != nil {
			return fmt.Errorf("process: guest %s: %w", id, err)
		}
	}
	return nil
}

// Pause freezes the running guest's cgroup.
func (d *Driver) Pause(ctx context.Context, id string) error { return d.freezer(ctx, id, "pause") }

// Resume thaws the paused guest's cgroup.
func (d *Driver) Resume(ctx context.Context, id string) error { return d.freezer(ctx, id, "resume") }

func (d *Driver) freezer(ctx context.Context, id, op string) error {
	dir, err := d.guestDir(id)
	if err != nil {
		return err
	}
	alive, err := shimAlive(filepath.Join(dir, pidFile))
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	if !alive {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is not running", id)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := call(cctx, filepath.Join(dir, sockFile), request{Op: op})
	if err != nil {
		if rec, ok, _ := readExit(dir); ok {
			return novacron.Errorf(novacron.EInvalidState, "guest %s is not running (%s)", id, rec.Reason)
		}
		return fmt.Errorf("process: guest %s: %s: %w", id, op, err)
	}
	if !resp.OK {
		return shimError(resp)
	}
	return nil
}

// Logs returns the last tail lines of the guest's output (reaching into
// rotated files), or the whole current log file when tail <= 0.
func (d *Driver) Logs(ctx context.Context, id string, tail int) ([]byte, error) {
	dir, err := d.guestDir(id)
	if err != nil {
		return nil, err
	}
	b, err := readLogTail(logPath(dir), d.cfg.LogFiles, tail)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	return b, nil
}

// Delete removes an exited or created guest: its cgroup and its directory.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	dir := filepath.Join(d.cfg.Dir, id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, specFile)); err == nil {
		st, err := d.Status(ctx, id)
		if err != nil {
			return err
		}
		if st.State == driver.GuestRunning || st.State == driver.GuestPaused {
			return novacron.Errorf(novacron.EInvalidState, "guest %s is %s: stop it first", id, st.State)
		}
	}
	if err := d.waitShimGone(ctx, dir, 5*time.Second); err != nil {
		return err
	}
	if cg, err := loadCgroup(d.cfg.CgroupParent, id); err == nil {
		if err := killCgroup(cg, 5*time.Second); err != nil {
			return fmt.Errorf("process: guest %s: %w", id, err)
		}
		if err := cg.Delete(); err != nil {
			return fmt.Errorf("process: guest %s: remove cgroup: %w", id, err)
		}
	} else if !errors.Is(err, errNoCgroup) {
		return fmt.Errorf("process: guest %s: %w", id, err)
	}
	if d.cfg.Container != nil {
		if err := d.cfg.Container.Remove(ctx, dir); err != nil {
			return fmt.Errorf("process: guest %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("process: guest %s: %w", id, err)
	}
	d.log.Info("guest deleted", "guest", id)
	return nil
}

// List returns the ids of the guests in the driver's directory.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	ids := []string{}
	for _, e := range entries {
		if e.IsDir() && validID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}
