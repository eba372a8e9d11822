package fake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// Methods of the capabilities below, as named for FailNext, SetDelay and
// Calls.
const (
	MethodExec       = "Exec"
	MethodFollowLogs = "FollowLogs"
)

var (
	_ driver.Execer      = (*Driver)(nil)
	_ driver.LogFollower = (*Driver)(nil)
)

// followPoll is how often FollowLogs looks for new output.
const followPoll = 10 * time.Millisecond

// Print appends s to a guest's output, as if it printed it: a test hook.
func (d *Driver) Print(id, s string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return notFound(id)
	}
	g.output.WriteString(s)
	return nil
}

// SetExecExitCode sets the exit code of the commands run in a guest from
// now on (0 at first): a test hook.
func (d *Driver) SetExecExitCode(id string, code int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return notFound(id)
	}
	g.execExit = code
	return nil
}

// ExecSessions returns how many interactive commands run in a guest: a
// test hook.
func (d *Driver) ExecSessions(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if g := d.guests[id]; g != nil {
		return g.execRunning
	}
	return 0
}

// FollowLogs writes the last tail lines of the guest's output, then what
// it prints next (Print), until it stops running or ctx ends.
func (d *Driver) FollowLogs(ctx context.Context, id string, tail int, w io.Writer) error {
	if err := d.enter(ctx, MethodFollowLogs); err != nil {
		return err
	}
	d.mu.Lock()
	g := d.guests[id]
	if g == nil {
		d.mu.Unlock()
		return notFound(id)
	}
	b := lastLines(bytes.Clone(g.output.Bytes()), tail)
	off := g.output.Len()
	d.mu.Unlock()
	if len(b) > 0 {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		d.mu.Lock()
		g := d.guests[id]
		if g == nil {
			d.mu.Unlock()
			return nil
		}
		more := bytes.Clone(g.output.Bytes()[off:])
		off += len(more)
		running := g.running()
		d.mu.Unlock()
		if len(more) > 0 {
			if _, err := w.Write(more); err != nil {
				return err
			}
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// execRunning checks the request and that the guest runs, and returns the
// exit code its commands get.
func (d *Driver) execRunning(ctx context.Context, id string, req driver.ExecRequest) (int, error) {
	if err := d.enter(ctx, MethodExec); err != nil {
		return 0, err
	}
	if err := driver.CheckExec(req); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[id]
	if g == nil {
		return 0, notFound(id)
	}
	switch g.state {
	case driver.GuestRunning:
		return g.execExit, nil
	case driver.GuestPaused:
		return 0, novacron.Errorf(novacron.EInvalidState, "guest %s is paused", id)
	}
	return 0, novacron.Errorf(novacron.EInvalidState, "guest %s is not running", id)
}

// Exec runs nothing: the command's stdout is its arguments after the first,
// joined by spaces, with a newline, then its stdin; its stderr is its
// environment as sorted NAME=value lines, then its working directory; its
// exit code is SetExecExitCode's. The command ["/bin/sleep", …] waits for
// its timeout or its context.
func (d *Driver) Exec(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecResult, error) {
	code, err := d.execRunning(ctx, id, req)
	if err != nil {
		return driver.ExecResult{}, err
	}
	if req.TTY {
		return driver.ExecResult{}, novacron.FieldError("tty", "a command with a terminal is interactive")
	}
	if req.Command[0] == "/bin/sleep" {
		timeout := req.Timeout
		if timeout == 0 {
			timeout = driver.DefaultExecTimeout
		}
		select {
		case <-ctx.Done():
			return driver.ExecResult{}, ctx.Err()
		case <-time.After(timeout):
			return driver.ExecResult{ExitCode: 137, TimedOut: true}, nil
		}
	}
	max := req.MaxOutput
	if max == 0 {
		max = driver.DefaultExecOutput
	}
	out := append([]byte(strings.Join(req.Command[1:], " ")+"\n"), req.Stdin...)
	var errOut strings.Builder
	env := make([]string, 0, len(req.Env))
	for k, v := range req.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	for _, e := range env {
		errOut.WriteString(e + "\n")
	}
	errOut.WriteString(req.Cwd)
	res := driver.ExecResult{ExitCode: code, Stdout: out, Stderr: []byte(errOut.String())}
	if len(res.Stdout) > max {
		res.Stdout, res.StdoutTruncated = res.Stdout[:max], true
	}
	if len(res.Stderr) > max {
		res.Stderr, res.StderrTruncated = res.Stderr[:max], true
	}
	return res, nil
}

// ExecInteractive starts a command that echoes what is written to it (as
// a terminal would), says "resized to COLSxROWS\r\n" when its terminal is
// resized, and exits (with SetExecExitCode's code) at a ^D (0x04) or when
// its input is closed. Stopping the guest or ctx's end kills it (137).
func (d *Driver) ExecInteractive(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecSession, error) {
	code, err := d.execRunning(ctx, id, req)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	g := d.guests[id]
	exited := g.exited
	g.execRunning++
	d.mu.Unlock()
	s := &execSession{tty: req.TTY, code: code, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	s.onEnd = func() {
		d.mu.Lock()
		g.execRunning--
		d.mu.Unlock()
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-exited:
		case <-s.done:
			return
		}
		s.end(137)
	}()
	return s, nil
}

// execSession is a fake interactive command.
type execSession struct {
	tty  bool
	mu   sync.Mutex
	cond *sync.Cond
	out  bytes.Buffer
	code int
	// ended: the command exited with exit; done is closed then.
	ended bool
	exit  int
	done  chan struct{}
	onEnd func()
}

func (s *execSession) end(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended, s.exit = true, code
	close(s.done)
	s.cond.Broadcast()
	s.onEnd()
}

func (s *execSession) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.out.Len() == 0 && !s.ended {
		s.cond.Wait()
	}
	if s.out.Len() == 0 {
		return 0, io.EOF
	}
	return s.out.Read(p)
}

func (s *execSession) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	eof := bytes.IndexByte(p, 0x04)
	if eof >= 0 {
		s.out.Write(p[:eof])
	} else {
		s.out.Write(p)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if eof >= 0 {
		s.end(s.code)
	}
	return len(p), nil
}

func (s *execSession) CloseInput() error {
	if !s.tty {
		s.end(s.code)
	}
	return nil
}

func (s *execSession) Resize(cols, rows uint16) error {
	if !s.tty {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(&s.out, "resized to %dx%d\r\n", cols, rows)
	s.cond.Broadcast()
	return nil
}

func (s *execSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.exit, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (s *execSession) Close() error {
	s.end(137)
	return nil
}
