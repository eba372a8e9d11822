package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/vm"
)

// Commands run in a VM: POST /api/vm/vms/{id}/exec runs one to its end and
// answers its exit code and output; GET /api/vm/vms/{id}/exec is a
// WebSocket to an interactive one. Both are for the VM's owner and the
// operators and admins of its tenant (the VM service checks
// auth.Interactive), and both are audited.
//
// The WebSocket's command comes in the query: command (repeated, one
// argument each, in order), env (repeated, NAME=value), cwd, tty=1 for a
// terminal, and the terminal's cols and rows. Then:
//
//   - binary messages from the client are the command's input (at most
//     ConsoleReadLimit bytes each);
//   - text messages from the client are JSON control messages:
//     {"type":"resize","cols":N,"rows":N} resizes the terminal, and
//     {"type":"eof"} closes the command's input (without a terminal; on
//     one, send ^D); any other text closes the connection with 1003;
//   - binary messages from the server are the command's output (without a
//     terminal, its stdout and stderr as they come);
//   - once the command has ended and its output is sent, the server sends
//     the text message {"type":"exit","exit_code":N} and closes with 1000.
//
// Closing the WebSocket, or a client that does not take the output within
// 30 s (1008), or the server shutting down (1001) kills the command.

// execMessage is a control message of the exec WebSocket, either way.
type execMessage struct {
	Type     string `json:"type"`
	Cols     int    `json:"cols,omitempty"`
	Rows     int    `json:"rows,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
}

// maxTerminalSize bounds a terminal's cols and rows.
const maxTerminalSize = 10000

func (a *API) vmExec(r *http.Request) (any, error) {
	var req vm.ExecRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	st := stateOf(r)
	v, res, err := a.vms.Exec(r.Context(), st.actor, r.PathValue("id"), req)
	if v != nil {
		st.resourceID = v.ID
	}
	if err != nil {
		if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
			return nil, novacron.Errorf(novacron.EInvalid, "the client went away before the command ended: it was killed")
		}
		return nil, err
	}
	return res, nil
}

// execQuery reads the command of the exec WebSocket from its query.
func execQuery(q url.Values) (vm.ExecRequest, error) {
	var req vm.ExecRequest
	for k := range q {
		switch k {
		case "command", "env", "cwd", "tty", "cols", "rows":
		default:
			return req, novacron.FieldError(k, "unknown query parameter (known: command, env, cwd, tty, cols, rows)")
		}
	}
	req.Command = q["command"]
	for _, e := range q["env"] {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			return req, novacron.FieldError("env", "must be NAME=value")
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		if _, dup := req.Env[k]; dup {
			return req, novacron.FieldError("env", "names %s twice", k)
		}
		req.Env[k] = v
	}
	if len(q["cwd"]) > 1 {
		return req, novacron.FieldError("cwd", "must be given once")
	}
	req.Cwd = q.Get("cwd")
	switch q.Get("tty") {
	case "", "0", "false":
	case "1", "true":
		req.TTY = true
	default:
		return req, novacron.FieldError("tty", "must be 1 or 0")
	}
	for _, f := range []struct {
		name string
		v    *uint16
	}{{"cols", &req.Cols}, {"rows", &req.Rows}} {
		s := q.Get(f.name)
		if s == "" {
			continue
		}
		if !req.TTY {
			return req, novacron.FieldError(f.name, "goes with tty=1")
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxTerminalSize {
			return req, novacron.FieldError(f.name, "must be an integer between 1 and %d", maxTerminalSize)
		}
		*f.v = uint16(n)
	}
	return req, nil
}

// vmExecInteractive starts a command for the exec WebSocket, before the
// upgrade: a bad query is 400, a VM the caller cannot see 404, a user who
// is not its owner 403, a driver that cannot run commands 400, a VM that
// does not run 409.
func (a *API) vmExecInteractive(r *http.Request) (wsSession, error) {
	st := stateOf(r)
	req, err := execQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	// The command lives as long as the session, which runs within this
	// request.
	ctx, cancel := context.WithCancel(r.Context())
	v, sess, err := a.vms.ExecInteractive(ctx, st.actor, r.PathValue("id"), req)
	if v != nil {
		st.resourceID = v.ID
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &execSession{a: a, vm: v, sess: sess, cancel: cancel, requestID: st.id, user: st.actor.Username}, nil
}

// execSession pipes a WebSocket to an interactive command.
type execSession struct {
	a         *API
	vm        *novacron.VM
	sess      driver.ExecSession
	cancel    context.CancelFunc
	requestID string
	user      string
}

func (s *execSession) abort() {
	_ = s.sess.Close()
	s.cancel()
}

func (s *execSession) serve(ctx context.Context, c *websocket.Conn, stop <-chan struct{}) {
	defer s.cancel()
	start := time.Now()
	c.SetReadLimit(ConsoleReadLimit)

	var (
		once     sync.Once
		ended    = make(chan struct{})
		code     = websocket.StatusNormalClosure
		reason   string
		in, out  atomic.Int64
		exitCode atomic.Int64
	)
	exitCode.Store(-1)
	end := func(sc websocket.StatusCode, why string) {
		once.Do(func() {
			code, reason = sc, why
			close(ended)
		})
	}

	var wg sync.WaitGroup
	// The command's output, then its exit.
	wg.Go(func() {
		buf := make([]byte, consoleBuffer)
		for {
			n, err := s.sess.Read(buf)
			if n > 0 {
				wctx, cancel := context.WithTimeout(ctx, consoleWriteTimeout)
				werr := c.Write(wctx, websocket.MessageBinary, buf[:n])
				cancel()
				if werr != nil {
					end(websocket.StatusPolicyViolation, "the client did not take the output")
					return
				}
				out.Add(int64(n))
			}
			if err == nil {
				continue
			}
			status, werr := s.sess.Wait(ctx)
			if werr != nil {
				end(websocket.StatusInternalError, "the command's end is unknown")
				return
			}
			exitCode.Store(int64(status))
			msg, _ := json.Marshal(execMessage{Type: "exit", ExitCode: &status})
			wctx, cancel := context.WithTimeout(ctx, consoleWriteTimeout)
			_ = c.Write(wctx, websocket.MessageText, msg)
			cancel()
			end(websocket.StatusNormalClosure, fmt.Sprintf("the command exited with code %d", status))
			return
		}
	})
	// The client's input and control messages. A cancelled read context
	// would close the connection without a close frame: this read ends
	// when c is closed.
	wg.Go(func() {
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				end(websocket.CloseStatus(err), "")
				return
			}
			if typ == websocket.MessageText {
				if why := s.control(b); why != "" {
					end(websocket.StatusUnsupportedData, why)
					return
				}
				continue
			}
			if len(b) == 0 {
				continue
			}
			// Input to a command that has ended is dropped: its end
			// is reported by the output side.
			if _, err := s.sess.Write(b); err == nil {
				in.Add(int64(len(b)))
			}
		}
	})
	wg.Go(func() { keepAlive(ctx, c, ended, end) })

	select {
	case <-ended:
	case <-stop:
		end(websocket.StatusGoingAway, "the server is shutting down")
	}
	_ = s.sess.Close()
	s.cancel()
	if code == -1 || code == websocket.StatusNoStatusRcvd {
		code = websocket.StatusNormalClosure
	}
	if err := c.Close(code, closeReason(reason)); err != nil && !errors.Is(err, context.Canceled) {
		s.a.log.Debug("exec: close", "request_id", s.requestID, "err", err)
	}
	wg.Wait()
	s.a.log.Info("exec closed", "request_id", s.requestID, "vm_id", s.vm.ID, "user", s.user,
		"duration", time.Since(start).Round(time.Millisecond), "bytes_in", in.Load(), "bytes_out", out.Load(),
		"exit_code", exitCode.Load(), "close_code", int(code), "close_reason", reason)
}

// control applies a control message from the client, and returns why it
// is refused ("" when applied).
func (s *execSession) control(b []byte) string {
	var m execMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return `a text message must be a JSON control message ({"type":"resize",…} or {"type":"eof"})`
	}
	switch m.Type {
	case "resize":
		if m.Cols < 1 || m.Cols > maxTerminalSize || m.Rows < 1 || m.Rows > maxTerminalSize {
			return fmt.Sprintf("resize: cols and rows must be between 1 and %d", maxTerminalSize)
		}
		_ = s.sess.Resize(uint16(m.Cols), uint16(m.Rows))
	case "eof":
		_ = s.sess.CloseInput()
	default:
		return "unknown control message type (known: resize, eof)"
	}
	return ""
}

// keepAlive pings the peer every consolePing until ended is closed, and
// ends the session when a ping is not answered.
func keepAlive(ctx context.Context, c *websocket.Conn, ended <-chan struct{}, end func(websocket.StatusCode, string)) {
	keepAliveEvery(ctx, c, consolePing, ended, end)
}

// keepAliveEvery pings the peer every interval until ended is closed, and
// ends the session when a ping is not answered within half of it.
func keepAliveEvery(ctx context.Context, c *websocket.Conn, interval time.Duration, ended <-chan struct{}, end func(websocket.StatusCode, string)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ended:
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, interval/2)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				end(websocket.StatusGoingAway, "no answer to ping")
				return
			}
		}
	}
}

// streamWriteTimeout drops a client of a streamed answer (a followed log)
// that does not take a write within it.
const streamWriteTimeout = 30 * time.Second

// serveStream runs a streamed answer whose header is written: each write
// is flushed at once, within streamWriteTimeout; the stream ends when the
// client goes or the server shuts down (its context ends).
func (a *API) serveStream(w http.ResponseWriter, r *http.Request, st *reqState, rt *route, stream func(context.Context, io.Writer) error) {
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		a.streams.hook(srv)
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	stop, done, ok := a.streams.add()
	if !ok {
		return
	}
	defer done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	fw := &flushWriter{w: w, rc: rc}
	err := stream(ctx, fw)
	_ = rc.SetWriteDeadline(time.Time{})
	if err != nil && ctx.Err() == nil && !fw.failed {
		a.log.Warn("stream ended", "request_id", st.id, "action", rt.action, "err", err)
	}
}

// flushWriter writes a streamed answer: every write flushed at once, or
// failed after streamWriteTimeout.
type flushWriter struct {
	w      io.Writer
	rc     *http.ResponseController
	failed bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	_ = f.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	if err != nil {
		f.failed = true
	}
	return n, err
}
