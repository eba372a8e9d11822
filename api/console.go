package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// ConsoleProtocol is the WebSocket subprotocol of the console.
const ConsoleProtocol = "novacron"

// consoleChunk bounds one message to the server, which takes at most 64 KiB.
const consoleChunk = 32 << 10

// ConsoleLog returns what a VM's serial console printed, as text: its last
// tail lines, or all the server keeps when tail is 0. A driver without
// console is invalid_request.
func (c *Client) ConsoleLog(ctx context.Context, id string, tail int) ([]byte, error) {
	return c.vmText(ctx, id, "console/log", tail)
}

// Stats samples a running VM's resource use. A VM that does not run is
// invalid_state; a driver that keeps no stats is invalid_request.
func (c *Client) Stats(ctx context.Context, id string) (*VMStats, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	var out VMStats
	if err := c.Do(ctx, http.MethodGet, pathf("/api/vm/vms/%s/stats", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Console connects to the serial console of a running VM (a WebSocket):
// what is written is typed into the guest, what is read is its output. ctx
// bounds the whole connection, not only its opening. A refusal is an *Error
// as for any call: invalid_state when the VM does not run, conflict when
// its console is in use (one connection per VM), invalid_request when its
// driver has none, forbidden for a user who is not the VM's owner.
func (c *Client) Console(ctx context.Context, id string) (*Console, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	ws, err := c.dialWebSocket(ctx, pathf("/api/vm/vms/%s/console", id), nil)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, fmt.Errorf("api: console of vm %s: %w", id, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Console{ws: ws, ctx: ctx, cancel: cancel}, nil
}

// dialWebSocket opens a WebSocket route of the API with the client's token
// and the subprotocol novacron. A refusal is the API's *Error.
func (c *Client) dialWebSocket(ctx context.Context, path string, query url.Values) (*websocket.Conn, error) {
	u := c.baseURL + path
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	h := http.Header{}
	if c.userAgent != "" {
		h.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: h,
		Subprotocols: []string{ConsoleProtocol}})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			// Dial keeps the start of the body (1 KiB): enough for
			// the API's error.
			body, _ := io.ReadAll(resp.Body)
			return nil, decodeError(resp, body)
		}
		return nil, err
	}
	// Output comes in messages of up to the server's read buffer; control
	// and exit messages are small.
	ws.SetReadLimit(1 << 20)
	return ws, nil
}

// Console is a connection to a VM's serial console. One Read and one Write
// may run at once. Read returns io.EOF when the server closed the console
// normally (the guest's side ended: the VM stopped; Reason says so), and a
// *ConsoleClosedError when it closed it otherwise (it shuts down, or the
// client was too slow). Close detaches.
type Console struct {
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	rmu sync.Mutex
	r   io.Reader // the message being read

	mu     sync.Mutex
	reason string
}

// ConsoleClosedError says that the server closed a console other than
// normally: 1001 when it shuts down, 1008 when the client did not take the
// output in time, 1009 for a message over its limit.
type ConsoleClosedError struct {
	Code   int
	Reason string
}

func (e *ConsoleClosedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("the server closed the console (code %d)", e.Code)
	}
	return fmt.Sprintf("the server closed the console: %s (code %d)", e.Reason, e.Code)
}

// Read reads the guest's output.
func (c *Console) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			_, r, err := c.ws.Reader(c.ctx)
			if err != nil {
				return 0, c.readError(err)
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		if err != nil {
			return n, c.readError(err)
		}
		return n, nil
	}
}

func (c *Console) readError(err error) error {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		c.mu.Lock()
		c.reason = ce.Reason
		c.mu.Unlock()
		if ce.Code == websocket.StatusNormalClosure {
			return io.EOF
		}
		return &ConsoleClosedError{Code: int(ce.Code), Reason: ce.Reason}
	case c.closed.Load():
		return fmt.Errorf("api: console: read after Close: %w", err)
	case c.ctx.Err() != nil:
		return c.ctx.Err()
	}
	return fmt.Errorf("api: console: %w", err)
}

// Write types p into the guest.
func (c *Console) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), consoleChunk)]
		if err := c.ws.Write(c.ctx, websocket.MessageBinary, chunk); err != nil {
			if c.ctx.Err() != nil {
				return n, c.ctx.Err()
			}
			return n, fmt.Errorf("api: console: %w", err)
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Close detaches from the console.
func (c *Console) Close() error {
	c.closed.Store(true)
	defer c.cancel()
	err := c.ws.Close(websocket.StatusNormalClosure, "detached")
	var ce websocket.CloseError
	if err == nil || errors.As(err, &ce) || errors.Is(err, net.ErrClosed) || c.ctx.Err() != nil {
		return nil // closed, or the server had closed it already
	}
	return fmt.Errorf("api: console: %w", err)
}

// Reason is the reason the server gave when it closed the console, once
// Read has said it did.
func (c *Console) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}
