package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// ExecRequest is the body of POST /api/vm/vms/{id}/exec: a command to run in
// a running VM.
type ExecRequest struct {
	// Command is the program, an absolute path inside the guest, and its
	// arguments.
	Command []string `json:"command"`
	// Env is added to the guest's environment.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the working directory inside the guest (the guest's own when
	// empty).
	Cwd string `json:"cwd,omitempty"`
	// Stdin is the command's whole input, as text (at most 512 KiB).
	Stdin string `json:"stdin,omitempty"`
	// TimeoutS kills the command after this many seconds (0: 60, at most
	// 3600).
	TimeoutS int `json:"timeout_s,omitempty"`
}

// ExecResult is how a command ended and its output (each stream cut at
// 1 MiB; bytes that are not UTF-8 arrive as U+FFFD).
type ExecResult struct {
	// ExitCode is the command's exit status, 128+signal when a signal
	// killed it (137 when its timeout passed).
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
}

// Exec runs a command in a running VM to its end. A command that runs and
// fails is a result with its exit code, not an error; errors are refusals:
// invalid_state for a VM that is not running, invalid_request for a driver
// that cannot run commands or a command that cannot be started, forbidden
// for a user who is not the VM's owner. Cancelling ctx kills the command.
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest) (*ExecResult, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	var out ExecResult
	if err := c.Do(ctx, http.MethodPost, pathf("/api/vm/vms/%s/exec", id), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExecOptions is an interactive command: its arguments, environment and
// working directory as in ExecRequest, and, with TTY, a terminal of Cols ×
// Rows (80 × 24 when 0).
type ExecOptions struct {
	Command    []string
	Env        map[string]string
	Cwd        string
	TTY        bool
	Cols, Rows int
}

func (o ExecOptions) query() url.Values {
	q := url.Values{"command": o.Command}
	keys := make([]string, 0, len(o.Env))
	for k := range o.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Add("env", k+"="+o.Env[k])
	}
	if o.Cwd != "" {
		q.Set("cwd", o.Cwd)
	}
	if o.TTY {
		q.Set("tty", "1")
		if o.Cols > 0 && o.Rows > 0 {
			q.Set("cols", strconv.Itoa(o.Cols))
			q.Set("rows", strconv.Itoa(o.Rows))
		}
	}
	return q
}

// ExecInteractive starts a command in a running VM over a WebSocket and
// returns it running: what is written is its input, what is read its
// output (on a terminal, the terminal's; without, its stdout and stderr as
// they come). ctx bounds the whole session. Refusals are *Error, as for
// Exec; closing the session kills the command.
func (c *Client) ExecInteractive(ctx context.Context, id string, o ExecOptions) (*ExecSession, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	ws, err := c.dialWebSocket(ctx, pathf("/api/vm/vms/%s/exec", id), o.query())
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, fmt.Errorf("api: exec in vm %s: %w", id, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &ExecSession{ws: ws, ctx: ctx, cancel: cancel}, nil
}

// ExecSession is a command running interactively in a VM. One Read and one
// Write (or Resize, CloseInput) may run at once. Read returns io.EOF once the
// command has ended and all its output is read: ExitCode says how it ended.
// It returns an *ExecClosedError when the server closed the session
// otherwise (it shuts down: 1001; the client was too slow: 1008).
type ExecSession struct {
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	rmu sync.Mutex
	r   io.Reader

	mu       sync.Mutex
	exitCode *int
	reason   string
}

// ExecClosedError says that the server closed an exec session before the
// command's end was known.
type ExecClosedError struct {
	Code   int
	Reason string
}

func (e *ExecClosedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("the server closed the session (code %d)", e.Code)
	}
	return fmt.Sprintf("the server closed the session: %s (code %d)", e.Reason, e.Code)
}

// execMessage is a control message of the exec WebSocket.
type execMessage struct {
	Type     string `json:"type"`
	Cols     int    `json:"cols,omitempty"`
	Rows     int    `json:"rows,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
}

// Read reads the command's output.
func (s *ExecSession) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		if s.r == nil {
			typ, r, err := s.ws.Reader(s.ctx)
			if err != nil {
				return 0, s.readError(err)
			}
			if typ == websocket.MessageText {
				b, err := io.ReadAll(io.LimitReader(r, 4096))
				if err != nil {
					return 0, s.readError(err)
				}
				var m execMessage
				if json.Unmarshal(b, &m) == nil && m.Type == "exit" && m.ExitCode != nil {
					s.mu.Lock()
					s.exitCode = m.ExitCode
					s.mu.Unlock()
				}
				continue
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if errors.Is(err, io.EOF) {
			s.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		if err != nil {
			return n, s.readError(err)
		}
		return n, nil
	}
}

func (s *ExecSession) readError(err error) error {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		s.mu.Lock()
		s.reason = ce.Reason
		ended := s.exitCode != nil
		s.mu.Unlock()
		if ce.Code == websocket.StatusNormalClosure && ended {
			return io.EOF
		}
		return &ExecClosedError{Code: int(ce.Code), Reason: ce.Reason}
	case s.closed.Load():
		return fmt.Errorf("api: exec: read after Close: %w", err)
	case s.ctx.Err() != nil:
		return s.ctx.Err()
	}
	return fmt.Errorf("api: exec: %w", err)
}

// Write writes to the command's input.
func (s *ExecSession) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), consoleChunk)]
		if err := s.ws.Write(s.ctx, websocket.MessageBinary, chunk); err != nil {
			return n, s.writeError(err)
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (s *ExecSession) writeError(err error) error {
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	return fmt.Errorf("api: exec: %w", err)
}

func (s *ExecSession) control(m execMessage) error {
	b, _ := json.Marshal(m)
	if err := s.ws.Write(s.ctx, websocket.MessageText, b); err != nil {
		return s.writeError(err)
	}
	return nil
}

// Resize changes the size of the command's terminal.
func (s *ExecSession) Resize(cols, rows int) error {
	return s.control(execMessage{Type: "resize", Cols: cols, Rows: rows})
}

// CloseInput ends the command's input (without a terminal; on one, write
// ^D).
func (s *ExecSession) CloseInput() error { return s.control(execMessage{Type: "eof"}) }

// ExitCode returns the command's exit code, once Read has returned io.EOF.
func (s *ExecSession) ExitCode() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exitCode == nil {
		return 0, false
	}
	return *s.exitCode, true
}

// Close ends the session, and the command with it if it still runs.
func (s *ExecSession) Close() error {
	s.closed.Store(true)
	defer s.cancel()
	err := s.ws.Close(websocket.StatusNormalClosure, "detached")
	var ce websocket.CloseError
	if err == nil || errors.As(err, &ce) || errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("api: exec: %w", err)
}

// FollowVMLogs follows the output of a process or container VM: its last
// tail lines (all of the current log when 0), then what it writes, until
// its guest's run ends (the reader's EOF), ctx ends or the caller closes
// the reader. A driver that cannot follow logs is invalid_request.
func (c *Client) FollowVMLogs(ctx context.Context, id string, tail int) (io.ReadCloser, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	q := url.Values{"follow": {"1"}}
	if tail > 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	resp, err := c.send(ctx, http.MethodGet, pathf("/api/vm/vms/%s/logs", id), q, nil, "text/plain")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, decodeError(resp, body)
	}
	return resp.Body, nil
}
