package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// commandExit is how a command run in a VM ended: Run exits with its code,
// printing nothing more.
type commandExit struct{ code int }

func (c *commandExit) Error() string { return fmt.Sprintf("the command exited with code %d", c.code) }

// exitWith is nil for a command that exited with 0.
func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return &commandExit{code: code}
}

func newVMExecCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec VM [flags] -- COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running VM (a container), as the container's own process
runs: its user, environment (with --env on top) and working directory
(unless --workdir), without capabilities. COMMAND is an absolute path inside
the container. Only the VM's owner and the operators and admins of its
tenant may.

By default the command runs to its end: its stdout and stderr are printed
here, each to its own stream (the server keeps the first MiB of each), and
novacron exits with the command's exit code. The command reads no input;
--timeout kills it (60s by default, at most 1h).

With -t, the command runs on a terminal, attached to yours (raw; resized
with your window); with -i and no terminal, your stdin is piped to it until
it ends, and its stdout and stderr come back as one stream on stdout.
Either way, interrupting novacron kills the command. Flags go before VM.`,
		Example: `  novacron vm exec web -- /bin/cat /etc/os-release
  novacron vm exec -e DEBUG=1 -w /srv web -- /bin/sh -c 'ls -l; exit 3'; echo $?
  novacron vm exec -t web -- /bin/sh
  tar c data | novacron vm exec -i web -- /bin/tar x -C /tmp`,
		Args: cobra.MinimumNArgs(2),
	}
	fs := cmd.Flags()
	// Flags after VM belong to the command.
	fs.SetInterspersed(false)
	tty := fs.BoolP("tty", "t", false, "run the command on a terminal attached to yours")
	interactive := fs.BoolP("interactive", "i", false, "pipe stdin to the command (without -t, stdout and stderr come back as one stream)")
	envs := fs.StringArrayP("env", "e", nil, "set a variable for the command, `NAME=value` (repeatable)")
	workdir := fs.StringP("workdir", "w", "", "the working `DIR` inside the container (default: the container's)")
	timeout := fs.Duration("timeout", 0, "kill the command after this `DURATION` (without -t or -i; default 60s, at most 1h)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		command := args[1:]
		if len(command) > 0 && command[0] == "--" {
			command = command[1:]
		}
		if len(command) == 0 {
			return usagef("no command: novacron vm exec VM -- COMMAND [ARG...]")
		}
		env := map[string]string{}
		for _, kv := range *envs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef("--env %q: must be NAME=value", kv)
			}
			env[k] = v
		}
		if *timeout != 0 && (*tty || *interactive) {
			return usagef("--timeout is for a command run to its end, not with -t or -i")
		}
		if *timeout < 0 || *timeout > time.Hour || (*timeout > 0 && *timeout < time.Second) {
			return usagef("--timeout must be between 1s and 1h")
		}
		fd, isTerm := e.terminalFd()
		if *tty && !isTerm {
			return usagef("-t needs a terminal on stdin (use -i to pipe stdin)")
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		switch {
		case *tty:
			return e.execTerminal(ctx, c, vm, fd, api.ExecOptions{Command: command, Env: env, Cwd: *workdir, TTY: true})
		case *interactive:
			return e.execPiped(ctx, c, vm, api.ExecOptions{Command: command, Env: env, Cwd: *workdir})
		}
		res, err := c.Exec(ctx, vm.ID, api.ExecRequest{Command: command, Env: env, Cwd: *workdir,
			TimeoutS: int((*timeout + time.Second - 1) / time.Second)})
		if err != nil {
			return err
		}
		if _, err := io.WriteString(e.stdout, res.Stdout); err != nil {
			return err
		}
		if _, err := io.WriteString(e.stderr, res.Stderr); err != nil {
			return err
		}
		for _, cut := range []struct {
			name string
			cut  bool
		}{{"stdout", res.StdoutTruncated}, {"stderr", res.StderrTruncated}} {
			if cut.cut {
				fmt.Fprintf(e.stderr, "novacron: the command's %s was cut: the server keeps its first MiB\n", cut.name)
			}
		}
		if res.TimedOut {
			fmt.Fprintln(e.stderr, "novacron: the command was killed: its timeout passed")
		}
		return exitWith(res.ExitCode)
	}
	return cmd
}

// execPiped pipes stdin to an interactive command without a terminal, and
// its output to stdout, until it ends.
func (e *env) execPiped(ctx context.Context, c *api.Client, vm *novacron.VM, o api.ExecOptions) error {
	s, err := c.ExecInteractive(ctx, vm.ID, o)
	if err != nil {
		return err
	}
	defer s.Close()
	go func() {
		if _, err := io.Copy(s, e.stdin); err == nil {
			_ = s.CloseInput()
		}
	}()
	return e.execOutput(s)
}

// execOutput copies the session's output to stdout until the command ends,
// and returns its exit.
func (e *env) execOutput(s *api.ExecSession) error {
	if _, err := io.Copy(e.stdout, s); err != nil {
		return err
	}
	code, ok := s.ExitCode()
	if !ok {
		return fmt.Errorf("the command's end is unknown")
	}
	return exitWith(code)
}

// execTerminal attaches the terminal fd (stdin) to a command on a terminal:
// raw, resized with the window, restored at the end.
func (e *env) execTerminal(ctx context.Context, c *api.Client, vm *novacron.VM, fd int, o api.ExecOptions) error {
	if cols, rows, err := term.GetSize(fd); err == nil {
		o.Cols, o.Rows = cols, rows
	}
	s, err := c.ExecInteractive(ctx, vm.ID, o)
	if err != nil {
		return err
	}
	defer s.Close()
	old, err := term.MakeRaw(fd)
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-winch:
				if cols, rows, err := term.GetSize(fd); err == nil {
					_ = s.Resize(cols, rows)
				}
			}
		}
	}()
	go func() { _, _ = io.Copy(s, e.stdin) }()
	err = e.execOutput(s)
	if rerr := term.Restore(fd, old); rerr != nil && err == nil {
		err = fmt.Errorf("terminal: %w", rerr)
	}
	return err
}
