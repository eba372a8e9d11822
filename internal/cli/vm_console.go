package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// detachKey (Ctrl-]) detaches from a console on a terminal, as in telnet.
const detachKey = 0x1d

// consoleLinger is how long the guest's output is still printed after
// stdin ended (without a terminal), so that the answer to the last line
// typed is not lost.
const consoleLinger = time.Second

func newVMConsoleCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console VM",
		Short: "Attach to the serial console of a VM, or print its log",
		Long: `Attach to the serial console of a running VM: what you type goes to the
guest, what it prints comes here. One connection per VM at a time.

On a terminal, input is raw (Ctrl-C goes to the guest) and Ctrl-] detaches.
Without a terminal, stdin and stdout are piped as they are: the command ends
when the console closes (the VM stopped), or one second after stdin ends.

With --log, print what the console printed instead (the last --tail lines).`,
		Example: `  novacron vm console tiny
  printf 'uname -a\n' | novacron vm console tiny
  novacron vm console tiny --log --tail 50`,
		Args: cobra.ExactArgs(1),
	}
	fs := cmd.Flags()
	logOnly := fs.Bool("log", false, "print the console's output so far instead of attaching")
	tail := fs.Int("tail", 0, "with --log, only the last `N` lines (default: all that is kept)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *tail < 0 {
			return usagef("--tail must not be negative")
		}
		if fs.Changed("tail") && !*logOnly {
			return usagef("--tail goes with --log")
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if *logOnly {
			b, err := c.ConsoleLog(cmd.Context(), vm.ID, *tail)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		}
		return e.attachConsole(cmd.Context(), c, vm)
	}
	return cmd
}

// consoleEnd is how an attached console ended.
type consoleEnd int

const (
	endClosed   consoleEnd = iota // the server closed it (the guest's side ended)
	endDetached                   // Ctrl-]
	endInput                      // stdin ended
	endCanceled                   // ctx ended (a signal)
)

// attachConsole pipes the terminal, or stdin and stdout, to the console.
func (e *env) attachConsole(ctx context.Context, c *api.Client, vm *novacron.VM) error {
	con, err := c.Console(ctx, vm.ID)
	if err != nil {
		return err
	}
	defer con.Close()
	fd, tty := e.terminalFd()
	if !tty {
		_, err := pipeConsole(ctx, con, e.stdin, e.stdout, false)
		return err
	}
	fmt.Fprintf(e.stderr, "Connected to the console of %s; Ctrl-] to detach\n", vm.Name)
	old, err := term.MakeRaw(fd)
	if err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	end, err := pipeConsole(ctx, con, e.stdin, e.stdout, true)
	if rerr := term.Restore(fd, old); rerr != nil && err == nil {
		err = fmt.Errorf("terminal: %w", rerr)
	}
	// Raw output left the cursor anywhere.
	fmt.Fprintln(e.stderr)
	switch {
	case err != nil:
	case end == endDetached:
		fmt.Fprintf(e.stderr, "Detached from the console of %s.\n", vm.Name)
	case end == endClosed:
		reason := con.Reason()
		if reason == "" {
			reason = "closed by the server"
		}
		fmt.Fprintf(e.stderr, "Console closed: %s.\n", reason)
	}
	return err
}

// pipeConsole copies in to the console and the console to out until the
// console closes, in ends (with a linger for the guest's last output),
// Ctrl-] is typed (tty) or ctx ends. The console is closed on return. A
// console the server closed normally is no error.
func pipeConsole(ctx context.Context, con io.ReadWriteCloser, in io.Reader, out io.Writer, tty bool) (consoleEnd, error) {
	output := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, con)
		output <- err
	}()
	input := make(chan consoleEnd, 1)
	go func() {
		input <- copyInput(con, in, tty)
	}()

	var (
		end consoleEnd
		err error
	)
	select {
	case err = <-output:
		end = endClosed
	case end = <-input:
		if end == endInput && !tty {
			t := time.NewTimer(consoleLinger)
			select {
			case err = <-output:
				end = endClosed
			case <-t.C:
			case <-ctx.Done():
				end, err = endCanceled, ctx.Err()
			}
			t.Stop()
		}
	case <-ctx.Done():
		end, err = endCanceled, ctx.Err()
	}
	cerr := con.Close()
	if end != endClosed {
		// Once the console is closed, its reader ends too.
		<-output
		if err == nil {
			err = cerr
		}
	}
	return end, err
}

// copyInput copies in to the console until in ends, a write fails or, on a
// terminal, Ctrl-] is typed.
func copyInput(con io.Writer, in io.Reader, tty bool) consoleEnd {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		b := buf[:n]
		detach := false
		if tty {
			if i := bytes.IndexByte(b, detachKey); i >= 0 {
				b, detach = b[:i], true
			}
		}
		if len(b) > 0 {
			if _, werr := con.Write(b); werr != nil {
				return endInput
			}
		}
		if detach {
			return endDetached
		}
		if err != nil {
			return endInput
		}
	}
}

func newVMStatsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats VM",
		Short: "Show a running VM's resource use",
		Long: `Show a sample of a running VM's resource use, taken now on its node:
counters since the guest started. A counter its driver cannot read shows as -.`,
		Example: `  novacron vm stats tiny -o json`,
		Args:    cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		st, err := c.Stats(cmd.Context(), vm.ID)
		if err != nil {
			return err
		}
		if outputJSON(cmd) {
			return writeJSON(e.stdout, st)
		}
		return fields(e.stdout,
			"VM", vm.Name,
			"CPU time", strconv.FormatFloat(st.CPUSeconds, 'f', 2, 64)+" s",
			"Memory", fmtBytes(st.MemoryBytes),
			"Disk read", optBytes(st.DiskReadBytes),
			"Disk written", optBytes(st.DiskWriteBytes),
			"Disk reads", optCount(st.DiskReadOps),
			"Disk writes", optCount(st.DiskWriteOps),
			"Processes", optCount(st.Pids),
			"Network in", optBytes(st.NetworkRxBytes),
			"Network out", optBytes(st.NetworkTxBytes),
			"Sampled", fmtTime(st.SampledAt),
		)
	}
	return cmd
}

// optBytes shows a counter of bytes, "" when the driver cannot read it.
func optBytes(p *int64) string {
	if p == nil {
		return ""
	}
	return fmtBytes(*p)
}

func optCount(p *int64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(*p, 10)
}
