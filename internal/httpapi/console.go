package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

// The console's WebSocket: binary messages both ways (text messages from
// the client are typed in as well), each at most ConsoleReadLimit bytes
// from the client; a ping every consolePing.
const (
	// ConsoleReadLimit bounds one message from the client.
	ConsoleReadLimit = 64 << 10
	consolePing      = 30 * time.Second
	// consoleWriteTimeout drops a client that does not take the guest's
	// output: a slow WebSocket client is dropped, never waited for.
	consoleWriteTimeout = 30 * time.Second
	consoleBuffer       = 32 << 10
)

// vmConsole connects to a running VM's serial console, before the upgrade:
// a VM the caller cannot see is 404, a driver without console 400, a VM
// that does not run or whose console is in use 409.
func (a *API) vmConsole(r *http.Request) (wsSession, error) {
	st := stateOf(r)
	v, err := a.vms.Get(r.Context(), st.actor, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	st.resourceID = v.ID
	if err := auth.Interactive(st.actor, v); err != nil {
		return nil, err
	}
	// The console lives as long as the session, which runs within this
	// request.
	ctx, cancel := context.WithCancel(r.Context())
	con, err := a.vms.Console(ctx, st.actor, v.ID)
	if err != nil {
		cancel()
		return nil, err
	}
	return &consoleSession{a: a, vm: v, con: con, cancel: cancel, requestID: st.id, user: st.actor.Username}, nil
}

// consoleSession pipes bytes between a WebSocket and a VM's console.
type consoleSession struct {
	a         *API
	vm        *novacron.VM
	con       io.ReadWriteCloser
	cancel    context.CancelFunc
	requestID string
	user      string
}

func (s *consoleSession) abort() {
	_ = s.con.Close()
	s.cancel()
}

// serve pipes until either end closes, and then closes the other: the
// guest's side ending (the VM stopped) closes the WebSocket normally with a
// reason; the client closing detaches from the console.
func (s *consoleSession) serve(ctx context.Context, c *websocket.Conn, stop <-chan struct{}) {
	defer s.cancel()
	start := time.Now()
	c.SetReadLimit(ConsoleReadLimit)

	var (
		once    sync.Once
		ended   = make(chan struct{})
		code    = websocket.StatusNormalClosure
		reason  string
		in, out atomic.Int64
	)
	end := func(sc websocket.StatusCode, why string) {
		once.Do(func() {
			code, reason = sc, why
			close(ended)
		})
	}
	consoleEnded := "the console of vm " + s.vm.Name + " ended"

	var wg sync.WaitGroup
	// The guest's output to the client.
	wg.Go(func() {
		buf := make([]byte, consoleBuffer)
		for {
			n, err := s.con.Read(buf)
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
			if err != nil {
				end(websocket.StatusNormalClosure, consoleEnded)
				return
			}
		}
	})
	// The client's input to the guest. A cancelled read context would
	// close the connection without a close frame: this read ends when c
	// is closed.
	wg.Go(func() {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				end(websocket.CloseStatus(err), "")
				return
			}
			if len(b) == 0 {
				continue
			}
			if _, err := s.con.Write(b); err != nil {
				end(websocket.StatusNormalClosure, consoleEnded)
				return
			}
			in.Add(int64(len(b)))
		}
	})
	// Keep-alive: a peer that does not answer a ping is gone.
	wg.Go(func() { keepAlive(ctx, c, ended, end) })

	select {
	case <-ended:
	case <-stop:
		end(websocket.StatusGoingAway, "the server is shutting down")
	}
	_ = s.con.Close()
	s.cancel()
	if code == -1 || code == websocket.StatusNoStatusRcvd {
		// The client went away without a close frame, or sent one
		// without a code: nothing to answer with a code of its own.
		code = websocket.StatusNormalClosure
	}
	if err := c.Close(code, closeReason(reason)); err != nil && !errors.Is(err, context.Canceled) {
		s.a.log.Debug("console: close", "request_id", s.requestID, "err", err)
	}
	wg.Wait()
	s.a.log.Info("console closed", "request_id", s.requestID, "vm_id", s.vm.ID, "user", s.user,
		"duration", time.Since(start).Round(time.Millisecond), "bytes_in", in.Load(), "bytes_out", out.Load(),
		"close_code", int(code), "close_reason", reason)
}

func (a *API) vmConsoleLog(r *http.Request) (any, error) {
	tail, err := tailParam(r)
	if err != nil {
		return nil, err
	}
	b, err := a.vms.ConsoleLog(r.Context(), stateOf(r).actor, r.PathValue("id"), tail)
	if err != nil {
		return nil, err
	}
	return plainText(b), nil
}

func (a *API) vmStats(r *http.Request) (any, error) {
	return a.vms.Stats(r.Context(), stateOf(r).actor, r.PathValue("id"))
}
