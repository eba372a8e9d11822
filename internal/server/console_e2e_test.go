package server_test

// The console through the composition root: the real server with fake
// drivers, one of which ("qemu") has a console that echoes. What it checks
// is the wiring around the WebSocket: the http.Server's timeouts, its
// shutdown (hijacked connections are neither waited for nor closed by
// http.Server.Shutdown), and a token in the URL kept out of the log. The
// route itself is tested in internal/httpapi, a real guest's console in
// qemu_e2e_test.go. The helpers below serve both.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/server"
)

// dialConsole opens the console of VM id with a bearer token, sent in the
// Authorization header or, with inQuery, as ?token= as browsers do. On a
// refusal it returns a nil connection and the API's error reply.
func (h *harness) dialConsole(token, id string, inQuery bool) (*websocket.Conn, reply) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(h.url, "http") + "/api/vm/vms/" + id + "/console"
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}, Subprotocols: []string{"novacron"}}
	if inQuery {
		u += "?token=" + token
	} else {
		opts.HTTPHeader.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err == nil {
		h.t.Cleanup(func() { c.CloseNow() })
		return c, reply{status: http.StatusSwitchingProtocols, header: resp.Header}
	}
	if resp == nil {
		h.t.Fatalf("console of %s: %v", id, err)
	}
	out := reply{status: resp.StatusCode, header: resp.Header}
	out.raw, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(out.raw, &out.body)
	return nil, out
}

// consoleUntil reads a console's output until it holds want and returns
// all it read; it fails the test after timeout.
func consoleUntil(t *testing.T, c *websocket.Conn, want string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []byte
	for !strings.Contains(string(got), want) {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("console: waiting for %q: %v; read %q", want, err, got[max(0, len(got)-300):])
		}
		got = append(got, b...)
	}
	return string(got)
}

// typeConsole types s into a console.
func typeConsole(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte(s)); err != nil {
		t.Fatalf("console: type %q: %v", s, err)
	}
}

// echoConsoles is the fake driver with a console that echoes.
type echoConsoles struct {
	*fake.Driver
	mu   sync.Mutex
	open map[string]net.Conn
}

func (d *echoConsoles) Capabilities() driver.Capabilities {
	c := d.Driver.Capabilities()
	c.Console = true
	return c
}

func (d *echoConsoles) Console(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	st, err := d.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.State != driver.GuestRunning {
		return nil, novacron.Errorf(novacron.EInvalidState, "guest %s is %s", id, st.State)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.open[id] != nil {
		return nil, novacron.Errorf(novacron.EConflict, "the console of guest %s is in use", id)
	}
	user, guest := net.Pipe()
	d.open[id] = guest
	go func() {
		_, _ = io.Copy(guest, guest)
		guest.Close()
		d.mu.Lock()
		delete(d.open, id)
		d.mu.Unlock()
	}()
	return user, nil
}

func (d *echoConsoles) opened() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.open)
}

func TestConsoleThroughTheServer(t *testing.T) {
	consoles := &echoConsoles{Driver: fake.New(novacron.DriverQEMU), open: map[string]net.Conn{}}
	h := start(t, "", func(c *server.Config) {
		c.Drivers = []driver.Driver{fake.New(novacron.DriverProcess), consoles}
	})
	admin := h.admin()
	id := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, map[string]any{"name": "echo", "driver": "qemu",
		"cpus": 1, "memory_mb": 64, "start": true}), 200).str("id")
	proc := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, map[string]any{"name": "proc", "driver": "process",
		"cpus": 1, "memory_mb": 64, "start": true}), 200).str("id")

	_, r := h.dialConsole(admin, proc, false)
	h.want(r, 400, "invalid_request")
	_, r = h.dialConsole("", id, false)
	h.want(r, 401, "unauthorized")

	// A browser's way: the token in the URL, which the log never shows.
	c, r := h.dialConsole(admin, id, true)
	if c == nil {
		t.Fatalf("console: %d %s", r.status, r.raw)
	}
	if r.header.Get("X-Request-ID") == "" {
		t.Error("the upgrade has no X-Request-ID")
	}
	typeConsole(t, c, "hello\r")
	consoleUntil(t, c, "hello\r", 10*time.Second)
	_, r = h.dialConsole(admin, id, false)
	h.want(r, 409, "conflict")
	if strings.Contains(h.log.String(), admin) {
		t.Error("the log holds the token")
	}
	audit := h.want(h.req("GET", "/api/audit?action=vm.console", admin, nil), 200).items()
	if len(audit) != 4 {
		t.Errorf("%d vm.console audit entries, want 4", len(audit))
	}

	// Closing the server closes the console (1001), at once.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Read(ctx)
	if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
		t.Errorf("console after Close: %v (%v)", s, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %s", d)
	}
	eventually(t, "the guest's console released", func() error {
		if n := consoles.opened(); n != 0 {
			return errors.New("still open")
		}
		return nil
	})
}
