// Package driver defines what the node agent asks of a guest driver: a small
// core interface every driver implements, and optional capabilities (pause,
// logs) discovered by type assertion and declared in Capabilities.
package driver

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver/guestcmd"
)

// Spec is what a driver needs to create and run one guest. Nothing in it is
// a path: drivers keep every file under their own directory, named by ID.
type Spec struct {
	// ID is the VM's id (a UUID); drivers name files and cgroups after it.
	ID       string
	Name     string
	CPUs     int
	MemoryMB int
	DiskGB   int
	// Config is the VM's driver config, already accepted by ValidateConfig.
	Config json.RawMessage
	// UID and GID are the unprivileged ids the guest runs as, unique to it.
	UID, GID int
	// Boot files and disk images, as files in the agent's own image cache
	// (never a path from a request), each verified against its sha256;
	// empty when the VM uses none. BaseImage is what a qemu guest's disk is
	// made from (BaseImageFormat "qcow2" or "raw"); Kernel and Initrd boot a
	// qemu guest directly; a container's rootfs tarball is BaseImage too.
	BaseImage       string
	BaseImageFormat string
	Kernel          string
	Initrd          string
	// ImageCommand is the default command of a container's rootfs image,
	// run when the VM's config names none.
	ImageCommand []string `json:",omitempty"`
}

// GuestState is what a driver sees a guest doing.
type GuestState string

// Guest states.
const (
	// GuestRunning: the guest runs.
	GuestRunning GuestState = "running"
	// GuestPaused: the guest is frozen.
	GuestPaused GuestState = "paused"
	// GuestExited: the guest was started and has ended; ExitCode says how.
	GuestExited GuestState = "exited"
	// GuestCreated: the guest exists but was never started (or was reset).
	GuestCreated GuestState = "created"
)

// Status is a guest's state as its driver sees it.
type Status struct {
	State GuestState `json:"state"`
	// PID is the guest's main process while it runs.
	PID int `json:"pid,omitempty"`
	// ExitCode is set once an exited guest's status is known: its exit
	// status, or 128+signal when a signal killed it.
	ExitCode *int `json:"exit_code,omitempty"`
	// Reason says in words why the guest exited ("exited with code 3",
	// "killed by signal 9", "out of memory").
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	ExitedAt  time.Time `json:"exited_at,omitzero"`
}

// Capabilities declares what a driver supports beyond the core.
type Capabilities struct {
	Pause   bool `json:"pause"`
	Logs    bool `json:"logs"`
	Restart bool `json:"restart,omitempty"`
	Console bool `json:"console,omitempty"`
	Stats   bool `json:"stats,omitempty"`
	Watch   bool `json:"watch,omitempty"`
	// Exec: commands run in a running guest beside its own (Execer).
	Exec bool `json:"exec,omitempty"`
	// FollowLogs: the guests' output streamed as it is written
	// (LogFollower).
	FollowLogs bool `json:"follow_logs,omitempty"`
}

// Driver runs guests of one kind on this node. Methods are safe for
// concurrent use on different guests; the agent serialises calls on one
// guest. Errors are coded with the novacron error vocabulary: ENotFound for
// an unknown guest, EInvalidState for an action the guest's state forbids,
// EInvalid for a config ValidateConfig rejects; anything else is a failure
// of the node (operation_failed).
type Driver interface {
	// Name is the driver's name as VMs carry it ("process").
	Name() string
	Capabilities() Capabilities
	// ValidateConfig strictly checks a VM's driver config: unknown fields
	// and out-of-range values are EInvalid errors naming the field
	// ("config.command").
	ValidateConfig(config json.RawMessage) error
	// Create prepares a guest without starting it. It is idempotent for the
	// same spec.
	Create(ctx context.Context, spec Spec) error
	// Start starts a created or exited guest and returns once it runs.
	// Starting a running or paused guest is EInvalidState. A start that
	// fails (a command that cannot be executed) is an error saying why,
	// and leaves the guest as it was.
	Start(ctx context.Context, spec Spec) error
	// Stop asks the guest to end and kills it after timeout (at once when
	// force). It returns once the guest has exited. Stopping an exited
	// or never started guest is a no-op.
	Stop(ctx context.Context, id string, timeout time.Duration, force bool) error
	// Status reports the guest's state. It works for guests started by an
	// earlier run of the agent: guests outlive their agent. A guest whose
	// end could not be recorded (its supervisor was killed, the host
	// rebooted) is GuestExited with a Reason and no ExitCode.
	Status(ctx context.Context, id string) (Status, error)
	// Delete removes a guest that is not running and everything the driver
	// kept for it (files, cgroups). Deleting an unknown guest is a no-op.
	Delete(ctx context.Context, id string) error
	// List returns the ids of every guest this driver holds on the node,
	// including ones the control plane may not know.
	List(ctx context.Context) ([]string, error)
}

// Pauser is a driver that can freeze and thaw a running guest. Pausing a
// guest that is not running, or resuming one that is not paused, is
// EInvalidState. A graceful Stop of a paused guest thaws it to let it end.
type Pauser interface {
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
}

// LogReader is a driver that keeps its guests' output.
type LogReader interface {
	// Logs returns at most the last tail lines of the guest's output (all
	// of the current log when tail <= 0), oldest first.
	Logs(ctx context.Context, id string, tail int) ([]byte, error)
}

// LogFollower is a LogReader that also streams its guests' output as it is
// written.
type LogFollower interface {
	// FollowLogs writes the last tail lines of the guest's output (all of
	// the current log when tail <= 0) to w, then what the guest writes
	// next as it comes, until the guest's run ends (its last output
	// written), ctx ends or a write fails; it returns nil in the first
	// two cases. A guest that does not run gets its log so far.
	FollowLogs(ctx context.Context, id string, tail int, w io.Writer) error
}

// Restarter is a driver that restarts a running or paused guest in place
// (a hardware reset), without ending it. Restarting a guest that does not
// run is EInvalidState.
type Restarter interface {
	Restart(ctx context.Context, id string) error
}

// Watcher is a driver that sees its guests' state change as it happens
// (rather than when asked for their status).
type Watcher interface {
	// Watch calls changed with a guest's id whenever its state may have
	// changed (paused, resumed, powered off, crashed, reset), until ctx
	// ends. changed must not block.
	Watch(ctx context.Context, changed func(id string))
}

// Consoler is a driver whose guests have an interactive console.
type Consoler interface {
	// Console connects to the running guest's console: what is written
	// is typed into it, what is read is its output. One connection at a
	// time per guest: another is EConflict. Closing it detaches.
	Console(ctx context.Context, id string) (io.ReadWriteCloser, error)
}

// Stats is a sample of a running guest's resource use: counters since it
// started. A counter the driver cannot read is nil.
type Stats struct {
	// CPUSeconds is CPU time used (user and system).
	CPUSeconds float64 `json:"cpu_seconds"`
	// MemoryBytes is resident memory.
	MemoryBytes    int64  `json:"memory_bytes"`
	DiskReadBytes  *int64 `json:"disk_read_bytes,omitempty"`
	DiskWriteBytes *int64 `json:"disk_write_bytes,omitempty"`
	DiskReadOps    *int64 `json:"disk_read_ops,omitempty"`
	DiskWriteOps   *int64 `json:"disk_write_ops,omitempty"`
	// Pids is the number of processes and threads (containers).
	Pids           *int64    `json:"pids,omitempty"`
	NetworkRxBytes *int64    `json:"network_rx_bytes,omitempty"`
	NetworkTxBytes *int64    `json:"network_tx_bytes,omitempty"`
	SampledAt      time.Time `json:"sampled_at"`
}

// StatsReader is a driver that samples its guests' resource use. A guest
// that does not run is EInvalidState.
type StatsReader interface {
	Stats(ctx context.Context, id string) (Stats, error)
}

// Limits of a command run in a guest (Execer).
const (
	// DefaultExecTimeout bounds an Exec whose request names no timeout.
	DefaultExecTimeout = 60 * time.Second
	// MaxExecTimeout is the longest timeout an Exec may ask for.
	MaxExecTimeout = time.Hour
	// DefaultExecOutput bounds each of an Exec's stdout and stderr that is
	// kept; the rest is read and dropped.
	DefaultExecOutput = 1 << 20
)

// ExecRequest is a command to run in a running guest, beside its main
// process, as the guest's own user and with its restrictions.
type ExecRequest struct {
	// Command is the program (an absolute path inside the guest) and its
	// arguments, checked as a guest's config.command is (CheckExec).
	Command []string `json:"command"`
	// Env is added to the guest's own environment, overriding it.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the working directory inside the guest; "" is the guest's
	// own.
	Cwd string `json:"cwd,omitempty"`
	// TTY runs the command on a new terminal of Cols × Rows (80 × 24 when
	// 0): its output is the terminal's. Interactive commands only.
	TTY        bool   `json:"tty,omitempty"`
	Cols, Rows uint16 `json:"-"`
	// Stdin is the command's whole input (Exec only); without it the
	// command reads an empty one.
	Stdin []byte `json:"-"`
	// Timeout bounds an Exec: the command is killed when it passes
	// (0: DefaultExecTimeout).
	Timeout time.Duration `json:"-"`
	// MaxOutput bounds each of an Exec's stdout and stderr kept
	// (0: DefaultExecOutput).
	MaxOutput int `json:"-"`
}

// ExecResult is how a command run by Exec ended.
type ExecResult struct {
	// ExitCode is the command's exit status, or 128+signal when a signal
	// killed it (137 when it was killed for its timeout).
	ExitCode int
	// Stdout and Stderr are its output, each cut at the request's
	// MaxOutput (the Truncated flag set).
	Stdout, Stderr                   []byte
	StdoutTruncated, StderrTruncated bool
	// TimedOut: the command was killed when its timeout passed.
	TimedOut bool
}

// ExecSession is a command running interactively in a guest. Read and
// Write may be called at the same time as each other and as Resize.
type ExecSession interface {
	// Read reads the command's output: its terminal's, or its stdout and
	// stderr as they come, in one stream. It returns io.EOF once the
	// command has ended and its output has been read.
	io.Reader
	// Write writes to the command's input (its terminal, or its stdin).
	io.Writer
	// CloseInput ends the command's stdin; on a terminal it does nothing
	// (type ^D).
	CloseInput() error
	// Resize changes the size of the command's terminal; without one it
	// does nothing.
	Resize(cols, rows uint16) error
	// Wait waits until the command has ended and returns its exit code
	// (128+signal when a signal killed it), or ctx's error.
	Wait(ctx context.Context) (int, error)
	// Close kills the command if it still runs, together with what it
	// started in its session, and releases the session.
	Close() error
}

// Execer is a driver that runs commands in its running guests. A guest that
// is not running (stopped, paused) is EInvalidState; a request CheckExec
// refuses, or a command that cannot be started (no such file), EInvalid.
// The end of ctx kills the command.
type Execer interface {
	// Exec runs a command to its end and returns its exit code and
	// output.
	Exec(ctx context.Context, id string, req ExecRequest) (ExecResult, error)
	// ExecInteractive starts a command and returns once it runs; ctx
	// bounds the whole session. The caller closes it.
	ExecInteractive(ctx context.Context, id string, req ExecRequest) (ExecSession, error)
}

// CheckExec checks what every driver requires of an ExecRequest: the
// command and the environment as guestcmd checks a guest's config
// (errors name the fields "command[0]", "env.NAME"), a terminal's size,
// the timeout and the output bound. The working directory is the driver's
// to check.
func CheckExec(req ExecRequest) error {
	if err := guestcmd.CheckCommand("command", req.Command); err != nil {
		return err
	}
	if err := guestcmd.CheckEnv("env", req.Env); err != nil {
		return err
	}
	if req.Timeout < 0 || req.Timeout > MaxExecTimeout {
		return novacron.FieldError("timeout_s", "must be between 0 and %d", int(MaxExecTimeout/time.Second))
	}
	if req.MaxOutput < 0 {
		return novacron.FieldError("max_output", "must not be negative")
	}
	if req.TTY && len(req.Stdin) > 0 {
		return novacron.FieldError("stdin", "goes with a command without a terminal")
	}
	return nil
}
