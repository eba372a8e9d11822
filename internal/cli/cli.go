// Package cli is the novacron command line: the client verbs (login, user,
// tenant, token, audit …) that talk to a control plane through package api,
// and the commands that run the server and administer it. It is also the one
// place where configuration is read: every flag can come from the command
// line, from the environment or from a config file (see config.go), parsed
// once before any command runs.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

// version is the build's version, set with
// -ldflags "-X github.com/novacron/novacron/internal/cli.version=v1.2.3".
var version = "dev"

// Exit codes of Run.
const (
	exitOK          = 0
	exitError       = 1   // the command failed: an API error, I/O, …
	exitUsage       = 2   // bad flags, arguments or configuration
	exitInterrupted = 130 // SIGINT or SIGTERM cancelled the context
)

func init() {
	// Run every PersistentPreRunE from the root down, so a command that
	// declares its own hook does not silently skip the root's, which applies
	// the configuration.
	cobra.EnableTraverseRunHooks = true
}

// Run executes the command line args (without the program name) and returns
// the process's exit code: 0 on success, 1 when the command failed, 2 on a
// usage or configuration error, 130 when ctx was cancelled.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, &env{
		stdin:     stdin,
		stdout:    stdout,
		stderr:    stderr,
		lookupEnv: os.LookupEnv,
	}, args)
}

// env is what commands see of the process. Commands read streams and
// environment variables only through it, so tests run them in parallel with
// their own environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// lookupEnv reads an environment variable (os.LookupEnv outside tests).
	lookupEnv func(string) (string, bool)

	// started is set when the configuration hook begins: errors before it
	// (unknown flags, wrong arguments) are usage errors.
	started bool
	// configured is set once the configuration has been applied.
	configured bool
	// loginHint asks the error printer to suggest `novacron login` after an
	// unauthorized answer, because no token was sent.
	loginHint bool
}

func (e *env) getenv(name string) string {
	v, _ := e.lookupEnv(name)
	return v
}

func run(ctx context.Context, e *env, args []string) int {
	return execute(ctx, e, newRootCmd(e), args)
}

// execute runs root with args and turns the outcome into an exit code and,
// on failure, one "error: …" line on stderr.
func execute(ctx context.Context, e *env, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ce *commandExit
	if errors.As(err, &ce) {
		// A command run in a VM (vm exec) said it all.
		return ce.code
	}
	if ctx.Err() != nil {
		// Whatever failed, it failed because a signal cancelled the context.
		fmt.Fprintln(e.stderr, "error: interrupted")
		return exitInterrupted
	}
	// An *api.Error reads "<message> (<code>, request <id>)".
	fmt.Fprintln(e.stderr, "error: "+err.Error())
	var ue *usageError
	if errors.As(err, &ue) || !e.started {
		if cmd != nil {
			fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	if e.loginHint && api.IsCode(err, novacron.EUnauthorized) {
		fmt.Fprintln(e.stderr, "No credentials were sent: run 'novacron login' or pass --token.")
	}
	return exitError
}

// usageError marks an error as the user's mistake in flags, arguments or
// configuration: Run exits with 2 and points at --help.
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

// usagef returns a usage error with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// asUsage marks a non-nil err as a usage error.
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}
