package vm

import (
	"context"
	"io"
	"time"
	"unicode/utf8"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/driver"
)

// MaxExecStdin bounds the stdin of POST /api/vm/vms/{id}/exec (the body
// itself is bounded at 1 MiB).
const MaxExecStdin = 512 << 10

// ExecRequest is the body of POST /api/vm/vms/{id}/exec, and the query of
// its WebSocket form (without stdin and timeout_s).
type ExecRequest struct {
	// Command is the program, an absolute path inside the guest, and its
	// arguments: 1 to 256 of them, as a guest's config.command.
	Command []string `json:"command"`
	// Env is added to the guest's environment.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the working directory inside the guest; the guest's own when
	// empty.
	Cwd string `json:"cwd,omitempty"`
	// Stdin is the command's whole input, as text; empty: none.
	Stdin string `json:"stdin,omitempty"`
	// TimeoutS bounds the command (default 60, at most 3600 seconds):
	// it is killed then, and the answer says timed_out.
	TimeoutS int `json:"timeout_s,omitempty"`
	// TTY, Cols and Rows: the WebSocket form's terminal.
	TTY        bool   `json:"-"`
	Cols, Rows uint16 `json:"-"`
}

// ExecResult is the answer of POST /api/vm/vms/{id}/exec. Output is text:
// bytes that are not UTF-8 arrive as U+FFFD (use the WebSocket form for
// binary output). Each stream keeps its first MaxExecOutput bytes.
type ExecResult struct {
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
}

// MaxExecOutput bounds each of stdout and stderr in an ExecResult.
const MaxExecOutput = driver.DefaultExecOutput

// driverRequest checks a request and turns it into the driver's. Errors
// name the request's fields.
func (r ExecRequest) driverRequest() (driver.ExecRequest, error) {
	if r.TimeoutS < 0 || r.TimeoutS > int(driver.MaxExecTimeout/time.Second) {
		return driver.ExecRequest{}, novacron.FieldError("timeout_s", "must be between 1 and %d (0: %d)",
			int(driver.MaxExecTimeout/time.Second), int(driver.DefaultExecTimeout/time.Second))
	}
	if len(r.Stdin) > MaxExecStdin {
		return driver.ExecRequest{}, novacron.FieldError("stdin", "must be at most %d bytes", MaxExecStdin)
	}
	dr := driver.ExecRequest{Command: r.Command, Env: r.Env, Cwd: r.Cwd, TTY: r.TTY, Cols: r.Cols, Rows: r.Rows,
		Timeout: time.Duration(r.TimeoutS) * time.Second, MaxOutput: MaxExecOutput}
	if r.Stdin != "" {
		dr.Stdin = []byte(r.Stdin)
	}
	if err := driver.CheckExec(dr); err != nil {
		return driver.ExecRequest{}, err
	}
	return dr, nil
}

// execVM reads a VM the actor may run commands in (auth.Interactive), on a
// node whose driver can, and checks that it runs.
func (s *Service) execVM(ctx context.Context, actor *novacron.Actor, id string) (*novacron.VM, *nodeEntry, error) {
	vm, err := s.store.GetVM(ctx, auth.ScopeOf(actor), id)
	if err != nil {
		return nil, nil, err
	}
	if err := auth.Interactive(actor, vm); err != nil {
		return nil, nil, err
	}
	node, err := s.node(vm.NodeID)
	if err != nil {
		return nil, nil, err
	}
	if !node.info.Drivers[vm.Driver].Exec {
		return nil, nil, novacron.Errorf(novacron.EInvalid, "%s VMs cannot run commands", vm.Driver)
	}
	return vm, node, nil
}

// runningForExec is the error for a VM that is not running.
func runningForExec(vm *novacron.VM) error {
	switch vm.State {
	case novacron.StateRunning:
		return nil
	case novacron.StatePaused:
		return novacron.Errorf(novacron.EInvalidState, "vm %s is paused: resume it to run commands in it", vm.Name)
	}
	return novacron.Errorf(novacron.EInvalidState, "vm %s is %s: commands run only in a running VM", vm.Name, vm.State)
}

// execError makes a guest its node does not hold a VM that does not run.
func execError(vm *novacron.VM, err error) error {
	if novacron.IsCode(err, novacron.ENotFound) {
		return novacron.Errorf(novacron.EInvalidState, "vm %s is not running", vm.Name)
	}
	return err
}

// Exec runs a command in a running VM to its end, for the VM's owner and
// the operators and admins of its tenant: its exit code and output (each
// stream cut at MaxExecOutput). A command still running after its timeout
// is killed (TimedOut); the end of ctx (the client went away) kills it too.
// A VM that is not running is invalid_state, a driver that cannot run
// commands invalid_request.
func (s *Service) Exec(ctx context.Context, actor *novacron.Actor, id string, req ExecRequest) (*novacron.VM, *ExecResult, error) {
	if req.TTY {
		return nil, nil, novacron.FieldError("tty", "a command with a terminal runs over the WebSocket")
	}
	vm, node, err := s.execVM(ctx, actor, id)
	if err != nil {
		return nil, nil, err
	}
	dr, err := req.driverRequest()
	if err != nil {
		return vm, nil, err
	}
	if err := runningForExec(vm); err != nil {
		return vm, nil, err
	}
	res, err := node.client.ExecGuest(ctx, vm.ID, dr)
	if err != nil {
		return vm, nil, execError(vm, err)
	}
	s.log.Info("vm exec", "vm_id", vm.ID, "user", actor.Username, "command", dr.Command[0], "exit_code", res.ExitCode,
		"timed_out", res.TimedOut)
	return vm, &ExecResult{ExitCode: res.ExitCode, Stdout: text(res.Stdout), Stderr: text(res.Stderr),
		StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated, TimedOut: res.TimedOut}, nil
}

// text makes output a JSON string: invalid UTF-8 becomes U+FFFD.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return string([]rune(string(b)))
}

// ExecInteractive starts a command in a running VM, on a terminal
// (req.TTY) or with pipes, for the VM's owner and the operators and admins
// of its tenant, and returns it running with the VM; ctx bounds it, the
// caller closes it. Refusals are Exec's.
func (s *Service) ExecInteractive(ctx context.Context, actor *novacron.Actor, id string, req ExecRequest) (*novacron.VM, driver.ExecSession, error) {
	vm, node, err := s.execVM(ctx, actor, id)
	if err != nil {
		return nil, nil, err
	}
	if req.Stdin != "" || req.TimeoutS != 0 {
		return vm, nil, novacron.Errorf(novacron.EInvalid, "an interactive command takes no stdin or timeout_s: it reads what is sent, until it ends or the connection does")
	}
	dr, err := req.driverRequest()
	if err != nil {
		return vm, nil, err
	}
	if err := runningForExec(vm); err != nil {
		return vm, nil, err
	}
	sess, err := node.client.ExecGuestInteractive(ctx, vm.ID, dr)
	if err != nil {
		return vm, nil, execError(vm, err)
	}
	s.log.Info("vm exec started", "vm_id", vm.ID, "user", actor.Username, "command", dr.Command[0], "tty", dr.TTY)
	return vm, sess, nil
}

// FollowLogs checks that the actor may read a VM's logs and that its driver
// can follow them, and returns the function that does: it writes the last
// tail lines (all of the current log when tail <= 0), then the output as
// it is written, until the guest's run ends or ctx ends. A VM whose node
// holds no guest yet has no output, and nothing to follow.
func (s *Service) FollowLogs(ctx context.Context, actor *novacron.Actor, id string, tail int) (func(ctx context.Context, w io.Writer) error, error) {
	vm, node, err := s.vmWithCapability(ctx, actor, id, "logs to follow", func(c driver.Capabilities) bool { return c.FollowLogs })
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, w io.Writer) error {
		err := node.client.FollowGuestLogs(ctx, vm.ID, tail, w)
		if novacron.IsCode(err, novacron.ENotFound) {
			return nil
		}
		return err
	}, nil
}
