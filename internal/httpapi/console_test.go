package httpapi_test

// The console, console log and stats routes over a real SQLite store, the
// real authentication, VM service and in-process agent, and fake drivers:
// "process" has no console; "qemu" is the fake driver with a console that
// echoes what is typed, and stats. Users and their API tokens are written
// straight into the store: no password is ever hashed.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/agent"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/httpapi"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/vm"
)

// consoleDriver is the fake driver with a console and stats. A guest's
// console echoes what is typed into it; stopping the guest ends it.
type consoleDriver struct {
	*fake.Driver
	mu       sync.Mutex
	consoles map[string]net.Conn // the guest's end of each open console
}

var (
	_ driver.Consoler    = (*consoleDriver)(nil)
	_ driver.StatsReader = (*consoleDriver)(nil)
)

func newConsoleDriver(name string) *consoleDriver {
	return &consoleDriver{Driver: fake.New(name), consoles: map[string]net.Conn{}}
}

func (d *consoleDriver) Capabilities() driver.Capabilities {
	c := d.Driver.Capabilities()
	c.Console, c.Stats = true, true
	// As the real qemu driver: no commands, no followed logs.
	c.Exec, c.FollowLogs = false, false
	return c
}

func (d *consoleDriver) running(ctx context.Context, id string) error {
	st, err := d.Status(ctx, id)
	if err != nil {
		return err
	}
	if st.State != driver.GuestRunning && st.State != driver.GuestPaused {
		return novacron.Errorf(novacron.EInvalidState, "guest %s is %s", id, st.State)
	}
	return nil
}

func (d *consoleDriver) Console(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	if err := d.running(ctx, id); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.consoles[id] != nil {
		return nil, novacron.Errorf(novacron.EConflict, "the console of guest %s is in use", id)
	}
	user, guest := net.Pipe()
	d.consoles[id] = guest
	go func() {
		_, _ = io.Copy(guest, guest) // the echo
		guest.Close()
		d.mu.Lock()
		if d.consoles[id] == guest {
			delete(d.consoles, id)
		}
		d.mu.Unlock()
	}()
	return user, nil
}

// say writes to the guest's console, as the guest would.
func (d *consoleDriver) say(id, s string) error {
	d.mu.Lock()
	c := d.consoles[id]
	d.mu.Unlock()
	if c == nil {
		return errors.New("no console open")
	}
	_, err := io.WriteString(c, s)
	return err
}

func (d *consoleDriver) Stop(ctx context.Context, id string, timeout time.Duration, force bool) error {
	err := d.Driver.Stop(ctx, id, timeout, force)
	d.mu.Lock()
	if c := d.consoles[id]; c != nil {
		c.Close()
	}
	d.mu.Unlock()
	return err
}

func (d *consoleDriver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	if err := d.running(ctx, id); err != nil {
		return driver.Stats{}, err
	}
	rx := int64(1234)
	return driver.Stats{CPUSeconds: 1.5, MemoryBytes: 64 << 20, NetworkRxBytes: &rx, SampledAt: time.Now().UTC()}, nil
}

// syncBuffer is a log sink the test reads while the API writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// consoleWorld is an API with two tenants: in "default" the admin, the
// operator oscar and the users alice and bob; in "other" the user eve.
// Users may create "process" VMs (the fake driver, which runs commands and
// follows logs).
type consoleWorld struct {
	t      *testing.T
	store  *sqlite.Store
	api    *httpapi.API
	qemu   *consoleDriver
	proc   *fake.Driver
	url    string
	log    *syncBuffer
	tokens map[string]string // user name → API token
}

func newConsoleWorld(t *testing.T, cfg httpapi.Config) *consoleWorld {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &consoleWorld{t: t, store: st, qemu: newConsoleDriver(novacron.DriverQEMU), proc: fake.New(novacron.DriverProcess),
		log: &syncBuffer{}, tokens: map[string]string{}}
	log := slog.New(slog.NewJSONHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tenants := map[string]string{}
	for _, name := range []string{"default", "other"} {
		ten := &novacron.Tenant{Name: name}
		if err := st.CreateTenant(ctx, ten); err != nil {
			t.Fatal(err)
		}
		tenants[name] = ten.ID
	}
	for _, u := range []struct {
		name, tenant string
		role         novacron.Role
	}{
		{"admin", "default", novacron.RoleAdmin},
		{"oscar", "default", novacron.RoleOperator},
		{"alice", "default", novacron.RoleUser},
		{"bob", "default", novacron.RoleUser},
		{"eve", "other", novacron.RoleUser},
	} {
		user := &novacron.User{Username: u.name, Email: u.name + "@example.com", Role: u.role, TenantID: tenants[u.tenant],
			PasswordHash: "not a hash: nobody logs in"}
		if err := st.CreateUser(ctx, user); err != nil {
			t.Fatal(err)
		}
		tok, hash := auth.NewAPIToken()
		if err := st.CreateSession(ctx, &novacron.Session{UserID: user.ID, Kind: novacron.SessionToken, Name: "test",
			TokenHash: hash, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		w.tokens[u.name] = tok
	}
	authn, err := auth.NewService(st, auth.Config{Secret: []byte(strings.Repeat("s", auth.MinSecretLen))}, log)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{Dir: filepath.Join(dir, "agent"), NodeName: "node1",
		Drivers: []driver.Driver{w.proc, w.qemu}})
	if err != nil {
		t.Fatal(err)
	}
	vms := vm.New(st, vm.Config{ReconcileInterval: 100 * time.Millisecond, StopTimeout: time.Second, AllowUserProcess: true}, log)
	t.Cleanup(vms.Close)
	if _, err := vms.AddNode(ctx, ag, "local"); err != nil {
		t.Fatal(err)
	}
	w.api = httpapi.New(cfg, st, authn, vms, log)
	srv := httptest.NewServer(w.api.Handler())
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

// do sends a request with a token (none for "") and returns the status and
// body.
func (w *consoleWorld) do(method, path, token string, body any) (int, http.Header, []byte) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.url+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// errorCode is the code of an API error body.
func errorCode(b []byte) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Error.Code
}

// mkVM creates a VM as user and returns its id, started when start.
func (w *consoleWorld) mkVM(user, name, driverName string, start bool) string {
	w.t.Helper()
	status, _, b := w.do("POST", "/api/vm/vms?wait=1", w.tokens[user], map[string]any{"name": name, "driver": driverName,
		"cpus": 1, "memory_mb": 64, "start": start})
	if status != 200 {
		w.t.Fatalf("create %s: %d %s", name, status, b)
	}
	var v novacron.VM
	if err := json.Unmarshal(b, &v); err != nil {
		w.t.Fatal(err)
	}
	return v.ID
}

func (w *consoleWorld) act(user, id, action string) {
	w.t.Helper()
	if status, _, b := w.do("POST", "/api/vm/vms/"+id+"/"+action+"?wait=1", w.tokens[user], nil); status != 200 {
		w.t.Fatalf("%s: %d %s", action, status, b)
	}
}

// dialConsole opens the console of a VM; how says how the token travels:
// "header", "query", "protocol", or "" for no token.
func dialConsole(ctx context.Context, base, id, token, how string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/vm/vms/" + id + "/console"
	o := &websocket.DialOptions{}
	if opts != nil {
		*o = *opts
	}
	if o.HTTPHeader == nil {
		o.HTTPHeader = http.Header{}
	}
	switch how {
	case "header":
		o.HTTPHeader.Set("Authorization", "Bearer "+token)
		o.Subprotocols = append(o.Subprotocols, httpapi.WSProtocol)
	case "query":
		u += "?token=" + token
		o.Subprotocols = append(o.Subprotocols, httpapi.WSProtocol)
	case "protocol":
		o.Subprotocols = append(o.Subprotocols, httpapi.WSProtocol, "bearer."+token)
	}
	return websocket.Dial(ctx, u, o)
}

// consoleError dials a console that must be refused and returns the status
// and error code of the refusal.
func (w *consoleWorld) consoleError(id, user, how string) (int, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := dialConsole(ctx, w.url, id, w.tokens[user], how, nil)
	if err == nil {
		c.CloseNow()
		w.t.Fatalf("the console of %s opened for %q (%s)", id, user, how)
	}
	if resp == nil {
		w.t.Fatalf("dial: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("X-Request-ID") == "" {
		w.t.Errorf("refusal without X-Request-ID")
	}
	return resp.StatusCode, errorCode(b)
}

// open opens a console that must open, once the previous connection (if
// any) has let go of it: detaching is asynchronous.
func (w *consoleWorld) open(id, user, how string) *websocket.Conn {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c *websocket.Conn
	eventually(w.t, "open the console", func() error {
		var (
			resp *http.Response
			err  error
		)
		c, resp, err = dialConsole(ctx, w.url, id, w.tokens[user], how, nil)
		if err == nil {
			return nil
		}
		var b []byte
		if resp != nil {
			b, _ = io.ReadAll(resp.Body)
			if resp.StatusCode == 409 && errorCode(b) == novacron.EConflict {
				return err
			}
		}
		w.t.Fatalf("console of %s for %s (%s): %v %s", id, user, how, err, b)
		return nil
	})
	if c.Subprotocol() != httpapi.WSProtocol {
		w.t.Errorf("subprotocol %q, want %q", c.Subprotocol(), httpapi.WSProtocol)
	}
	w.t.Cleanup(func() { c.CloseNow() })
	return c
}

// echo types s into the console and reads it back.
func echo(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte(s)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < len(s) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read the echo of %q (got %q): %v", s, got, err)
		}
		if typ != websocket.MessageBinary {
			t.Errorf("a %v message, want binary", typ)
		}
		got = append(got, b...)
	}
	if string(got) != s {
		t.Fatalf("echo %q, want %q", got, s)
	}
}

// eventually retries f for a few seconds.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// audits lists the audit entries of an action, oldest first.
func (w *consoleWorld) audits(action string) []*novacron.AuditEntry {
	w.t.Helper()
	es, _, err := w.store.ListAudit(context.Background(), novacron.AllTenants, novacron.AuditFilter{Action: action,
		Page: novacron.Page{Limit: 500}})
	if err != nil {
		w.t.Fatal(err)
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

func TestConsoleRefusals(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{CORSOrigins: []string{"https://ui.example.com"}})
	proc := w.mkVM("admin", "proc", novacron.DriverProcess, true)
	id := w.mkVM("alice", "tiny", novacron.DriverQEMU, false)

	for _, tc := range []struct {
		name, vm, user, how string
		status              int
		code                string
	}{
		{"no token", id, "alice", "", 401, novacron.EUnauthorized},
		{"a stopped VM", id, "alice", "header", 409, novacron.EInvalidState},
		{"a driver without console", proc, "admin", "header", 400, novacron.EInvalid},
		{"another tenant's VM", id, "eve", "header", 404, novacron.ENotFound},
		{"another tenant's VM, by ?token=", id, "eve", "query", 404, novacron.ENotFound},
		{"a user who is not the owner", id, "bob", "protocol", 403, novacron.EForbidden},
		{"no such VM", "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "admin", "header", 404, novacron.ENotFound},
		{"a malformed id", "nope", "admin", "header", 404, novacron.ENotFound},
	} {
		status, code := w.consoleError(tc.vm, tc.user, tc.how)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}

	// A bad token, by each way, is 401; so are two tokens at once.
	for _, how := range []string{"header", "query", "protocol"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, resp, err := dialConsole(ctx, w.url, id, "nvc_not-a-token", how, nil)
		cancel()
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("a bad token by %s: %v %v", how, resp, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := dialConsole(ctx, w.url, id, w.tokens["alice"], "query",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + w.tokens["alice"]}}})
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("two tokens: %v %v", resp, err)
	}

	// ?token= counts on a WebSocket upgrade only.
	status, _, b := w.do("GET", "/api/vm/vms/"+id+"/console?token="+w.tokens["alice"], "", nil)
	if status != 401 {
		t.Errorf("?token= without an upgrade: %d %s", status, b)
	}
	status, _, b = w.do("GET", "/api/vm/vms/"+id+"?token="+w.tokens["alice"], "", nil)
	if status != 401 {
		t.Errorf("?token= on another route: %d %s", status, b)
	}
	// Without an upgrade, the console route is a 400.
	status, _, b = w.do("GET", "/api/vm/vms/"+id+"/console", w.tokens["alice"], nil)
	if status != 400 || errorCode(b) != novacron.EInvalid {
		t.Errorf("no upgrade: %d %s", status, b)
	}
	status, _, _ = w.do("POST", "/api/vm/vms/"+id+"/console", w.tokens["alice"], nil)
	if status != 405 {
		t.Errorf("POST: %d", status)
	}

	// A page of a foreign origin is refused; the allowed one is not.
	w.act("alice", id, "start")
	_, resp, err = dialConsole(ctx, w.url, id, w.tokens["alice"], "header",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example.com"}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("a foreign origin: %v %v", resp, err)
	}
	c, _, err := dialConsole(ctx, w.url, id, w.tokens["alice"], "query",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://ui.example.com"}}})
	if err != nil {
		t.Fatalf("the allowed origin: %v", err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// Every attempt is audited, allowed or not, with its outcome: the
	// 16 upgrades and requests to the console route above, all but the
	// last one refused.
	es := w.audits("vm.console")
	if len(es) != 16 {
		t.Errorf("%d vm.console audit entries, want 16", len(es))
	}
	var allowed, anonymous int
	for _, e := range es {
		if e.Resource != "vm" || e.Action != "vm.console" {
			t.Errorf("audit entry %+v", e)
		}
		switch {
		case e.Success:
			allowed++
			if e.Username != "alice" || e.ResourceID != id || e.TenantID == "" || e.Error != "" {
				t.Errorf("alice's console: %+v", e)
			}
		case e.Username == "bob":
			if e.ResourceID != id || !strings.HasPrefix(e.Error, "forbidden: ") {
				t.Errorf("bob's attempt: %+v", e)
			}
		case e.Username == "":
			anonymous++
			if !strings.HasPrefix(e.Error, "unauthorized: ") {
				t.Errorf("an anonymous attempt: %+v", e)
			}
		}
	}
	if allowed != 1 || anonymous != 6 {
		t.Errorf("%d allowed, %d anonymous; want 1, 6", allowed, anonymous)
	}
	for name, tok := range w.tokens {
		if strings.Contains(w.log.String(), tok) {
			t.Errorf("the log holds %s's token", name)
		}
	}
}

func TestConsolePipesBothWays(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkVM("alice", "tiny", novacron.DriverQEMU, true)

	// The owner, with the header.
	c := w.open(id, "alice", "header")
	echo(t, c, "hello\r")
	echo(t, c, strings.Repeat("x", 60<<10))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Text messages are typed in too.
	if err := c.Write(ctx, websocket.MessageText, []byte("text")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || string(b) != "text" {
		t.Fatalf("echo of a text message: %q %v", b, err)
	}
	// What the guest says unasked arrives too.
	if err := w.qemu.say(id, "login: "); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || string(b) != "login: " {
		t.Fatalf("the guest's output: %q %v", b, err)
	}

	// One connection at a time.
	if status, code := w.consoleError(id, "oscar", "query"); status != 409 || code != novacron.EConflict {
		t.Errorf("a second console: %d %s", status, code)
	}
	// Closing the WebSocket detaches: the console is free again, for the
	// tenant's operator (?token=) and an admin (subprotocol).
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}
	c2 := w.open(id, "oscar", "query")
	echo(t, c2, "operator\r")
	c2.Close(websocket.StatusNormalClosure, "")
	c2 = w.open(id, "admin", "protocol")
	echo(t, c2, "admin\r")

	// A message over the limit closes the connection (1009).
	if err := c2.Write(ctx, websocket.MessageBinary, make([]byte, httpapi.ConsoleReadLimit+1)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c2.Read(ctx)
	if s := websocket.CloseStatus(err); s != websocket.StatusMessageTooBig {
		t.Errorf("a message over the limit: %v (%v)", s, err)
	}

	// The VM stopping ends the console: a normal close, with a reason.
	c3 := w.open(id, "alice", "header")
	echo(t, c3, "still here\r")
	w.act("alice", id, "stop")
	_, _, err = c3.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || !strings.Contains(ce.Reason, "tiny") {
		t.Errorf("the VM stopped: %v", err)
	}
	if n := len(w.audits("vm.console")); n < 5 {
		t.Errorf("%d vm.console audit entries, want 5 or more", n)
	}
	if !strings.Contains(w.log.String(), `"msg":"console closed"`) {
		t.Errorf("no log of the closed console:\n%s", w.log.String())
	}
}

// TestConsoleShutdown checks that shutting the http.Server down closes the
// open consoles (1001) rather than leaving their hijacked connections
// behind, and refuses new ones.
func TestConsoleShutdown(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkVM("alice", "tiny", novacron.DriverQEMU, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: w.api.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second}
	go srv.Serve(ln)
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := dialConsole(ctx, base, id, w.tokens["alice"], "header", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	// The server's read and write timeouts do not cut the console.
	time.Sleep(1500 * time.Millisecond)
	echo(t, c, "after the timeouts\r")

	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
		t.Errorf("console after shutdown: %v (%v)", s, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	// The console was released.
	eventually(t, "the guest's console is released", func() error {
		w.qemu.mu.Lock()
		defer w.qemu.mu.Unlock()
		if w.qemu.consoles[id] != nil {
			return errors.New("still open")
		}
		return nil
	})
	// And no new one opens (on another server of the same API).
	if status, code := w.consoleError(id, "alice", "header"); status != 503 || code != novacron.EUnavailable {
		t.Errorf("a console after shutdown: %d %s", status, code)
	}
}

func TestConsoleLogAndStats(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	proc := w.mkVM("admin", "proc", novacron.DriverProcess, true)
	id := w.mkVM("alice", "tiny", novacron.DriverQEMU, false)

	// Stats: a stopped VM is 409, a driver without stats 400, another
	// tenant's VM 404.
	for _, tc := range []struct {
		vm, user string
		status   int
		code     string
	}{
		{id, "alice", 409, novacron.EInvalidState},
		{proc, "admin", 400, novacron.EInvalid},
		{id, "eve", 404, novacron.ENotFound},
		{id, "", 401, novacron.EUnauthorized},
	} {
		status, _, b := w.do("GET", "/api/vm/vms/"+tc.vm+"/stats", w.tokens[tc.user], nil)
		if status != tc.status || errorCode(b) != tc.code {
			t.Errorf("stats of %s as %q: %d %s", tc.vm, tc.user, status, b)
		}
	}
	w.act("alice", id, "start")
	// Any member of the tenant reads them, as it reads the VM.
	status, hdr, b := w.do("GET", "/api/vm/vms/"+id+"/stats", w.tokens["bob"], nil)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("stats: %d %s", status, b)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st["cpu_seconds"] != 1.5 || st["memory_bytes"] != float64(64<<20) || st["network_rx_bytes"] != float64(1234) ||
		st["sampled_at"] == nil {
		t.Errorf("stats: %s", b)
	}
	if _, ok := st["disk_read_bytes"]; ok {
		t.Errorf("a counter the driver cannot read is in the answer: %s", b)
	}

	// The console log: text, of what the guest wrote.
	status, hdr, b = w.do("GET", "/api/vm/vms/"+id+"/console/log", w.tokens["bob"], nil)
	if status != 200 || hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("console log: %d %s %s", status, hdr.Get("Content-Type"), b)
	}
	for _, tc := range []struct {
		path, user string
		status     int
	}{
		{"/api/vm/vms/" + id + "/console/log?tail=2", "alice", 200},
		{"/api/vm/vms/" + id + "/console/log?tail=-1", "alice", 400},
		{"/api/vm/vms/" + id + "/console/log?tail=100001", "alice", 400},
		{"/api/vm/vms/" + id + "/console/log?tail=x", "alice", 400},
		{"/api/vm/vms/" + id + "/console/log", "eve", 404},
		{"/api/vm/vms/" + proc + "/console/log", "admin", 400},
	} {
		if status, _, b := w.do("GET", tc.path, w.tokens[tc.user], nil); status != tc.status {
			t.Errorf("%s as %s: %d %s", tc.path, tc.user, status, b)
		}
	}
	// Reading is not audited.
	if n := len(w.audits("vm.stats")) + len(w.audits("vm.console_log")); n != 0 {
		t.Errorf("%d audit entries of reads", n)
	}
}

// TestConsoleThroughTheGoClient drives the real route with api.Client.
func TestConsoleThroughTheGoClient(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkVM("alice", "tiny", novacron.DriverQEMU, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := api.New(w.url, api.WithToken(w.tokens["alice"]))
	con, err := c.Console(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()
	if _, err := api.New(w.url, api.WithToken(w.tokens["bob"])).Console(ctx, id); !api.IsCode(err, novacron.EForbidden) {
		t.Errorf("bob: %v", err)
	}
	if _, err := api.New(w.url, api.WithToken(w.tokens["oscar"])).Console(ctx, id); !api.IsCode(err, novacron.EConflict) {
		t.Errorf("a second console: %v", err)
	}
	big := strings.Repeat("y", 200<<10)
	if _, err := io.WriteString(con, big); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(big))
	if _, err := io.ReadFull(con, b); err != nil || string(b) != big {
		t.Fatalf("echo of %d bytes: %v", len(big), err)
	}
	w.act("alice", id, "stop")
	if _, err := con.Read(b); err != io.EOF || !strings.Contains(con.Reason(), "tiny") {
		t.Errorf("after the stop: %v, reason %q", err, con.Reason())
	}
	if _, err := c.Console(ctx, id); !api.IsCode(err, novacron.EInvalidState) {
		t.Errorf("a stopped VM: %v", err)
	}
	st, err := c.Stats(ctx, id)
	if !api.IsCode(err, novacron.EInvalidState) {
		t.Errorf("stats of a stopped VM: %+v %v", st, err)
	}
	if _, err := c.ConsoleLog(ctx, id, 10); err != nil {
		t.Errorf("console log: %v", err)
	}
}
