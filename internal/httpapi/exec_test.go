package httpapi_test

// Commands run in a VM (POST and the WebSocket of /api/vm/vms/{id}/exec)
// and followed logs, over the console tests' world: the fake "process"
// driver runs commands (it echoes their arguments) and follows logs; the
// fake "qemu" does neither.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/httpapi"
)

type execAnswer struct {
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
}

// mkProcVM creates a started process VM as user, with the fake driver's
// config.
func (w *consoleWorld) mkProcVM(user, name string, config map[string]any) string {
	w.t.Helper()
	status, _, b := w.do("POST", "/api/vm/vms?wait=1", w.tokens[user], map[string]any{"name": name, "driver": novacron.DriverProcess,
		"cpus": 1, "memory_mb": 64, "start": true, "config": config})
	if status != 200 {
		w.t.Fatalf("create %s: %d %s", name, status, b)
	}
	var v novacron.VM
	if err := json.Unmarshal(b, &v); err != nil {
		w.t.Fatal(err)
	}
	return v.ID
}

func TestExecPost(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkProcVM("alice", "box", nil)
	tiny := w.mkVM("alice", "tiny", novacron.DriverQEMU, true)
	if err := w.proc.SetExecExitCode(id, 3); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"command": []string{"/bin/echo", "hi", "there"}, "env": map[string]string{"A": "1"}, "stdin": "in\n"}

	// The owner, the tenant's operator and an admin run commands.
	for _, user := range []string{"alice", "oscar", "admin"} {
		status, hdr, b := w.do("POST", "/api/vm/vms/"+id+"/exec", w.tokens[user], body)
		if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Fatalf("exec as %s: %d %s", user, status, b)
		}
		var res execAnswer
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 3 || res.Stdout != "hi there\nin\n" || res.Stderr != "A=1\n" || res.TimedOut || res.StdoutTruncated {
			t.Errorf("exec as %s: %s", user, b)
		}
		for _, k := range []string{"exit_code", "stdout", "stderr", "stdout_truncated", "stderr_truncated", "timed_out"} {
			if !strings.Contains(string(b), `"`+k+`":`) {
				t.Errorf("the answer lacks %s: %s", k, b)
			}
		}
	}

	for _, tc := range []struct {
		name, vm, user string
		body           any
		status         int
		code           string
	}{
		{"no token", id, "", body, 401, novacron.EUnauthorized},
		{"a user who is not the owner", id, "bob", body, 403, novacron.EForbidden},
		{"another tenant's VM", id, "eve", body, 404, novacron.ENotFound},
		{"no such VM", "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "admin", body, 404, novacron.ENotFound},
		{"a malformed id", "nope", "admin", body, 404, novacron.ENotFound},
		{"a driver that runs no commands", tiny, "alice", body, 400, novacron.EInvalid},
		{"no command", id, "alice", map[string]any{}, 400, novacron.EInvalid},
		{"a relative command", id, "alice", map[string]any{"command": []string{"echo"}}, 400, novacron.EInvalid},
		{"an unknown field", id, "alice", map[string]any{"command": []string{"/bin/true"}, "tty": true}, 400, novacron.EInvalid},
		{"a timeout too long", id, "alice", map[string]any{"command": []string{"/bin/true"}, "timeout_s": 3601}, 400, novacron.EInvalid},
		{"a body too large", id, "alice", map[string]any{"command": []string{"/bin/true"}, "stdin": strings.Repeat("x", 1<<20)}, 413, novacron.ETooLarge},
	} {
		status, _, b := w.do("POST", "/api/vm/vms/"+tc.vm+"/exec", w.tokens[tc.user], tc.body)
		if status != tc.status || errorCode(b) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, b, tc.status, tc.code)
		}
	}

	// The timeout kills the command; the answer says so.
	status, _, b := w.do("POST", "/api/vm/vms/"+id+"/exec", w.tokens["alice"], map[string]any{"command": []string{"/bin/sleep"}, "timeout_s": 1})
	var res execAnswer
	if err := json.Unmarshal(b, &res); status != 200 || err != nil || !res.TimedOut || res.ExitCode != 137 {
		t.Errorf("timeout: %d %s", status, b)
	}

	// A paused and a stopped VM run no command.
	w.act("alice", id, "pause")
	if status, _, b := w.do("POST", "/api/vm/vms/"+id+"/exec", w.tokens["alice"], body); status != 409 || errorCode(b) != novacron.EInvalidState {
		t.Errorf("a paused VM: %d %s", status, b)
	}
	w.act("alice", id, "resume")
	w.act("alice", id, "stop")
	if status, _, b := w.do("POST", "/api/vm/vms/"+id+"/exec", w.tokens["alice"], body); status != 409 || errorCode(b) != novacron.EInvalidState {
		t.Errorf("a stopped VM: %d %s", status, b)
	}

	// Every call is audited, allowed or not; the command is not recorded.
	es := w.audits("vm.exec")
	if len(es) != 17 {
		t.Errorf("%d vm.exec audit entries, want 17", len(es))
	}
	var ok, forbidden int
	for _, e := range es {
		if e.Success {
			ok++
		}
		if e.Username == "bob" && strings.HasPrefix(e.Error, "forbidden: ") && e.ResourceID == id {
			forbidden++
		}
		if strings.Contains(e.Error, "/bin/echo") {
			t.Errorf("the audit records the command: %+v", e)
		}
	}
	if ok != 4 || forbidden != 1 {
		t.Errorf("%d allowed (want 4), %d forbidden for bob (want 1)", ok, forbidden)
	}
}

// TestExecPostOutlivesTheReadTimeout: a command runs longer than the
// server's read timeout, which would otherwise cancel the request; a client
// that goes away kills it.
func TestExecPostOutlivesTheReadTimeout(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkProcVM("alice", "box", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: w.api.Handler(), ReadHeaderTimeout: time.Second, ReadTimeout: 300 * time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	post := func(ctx context.Context, timeoutS int) (*http.Response, error) {
		b, _ := json.Marshal(map[string]any{"command": []string{"/bin/sleep"}, "timeout_s": timeoutS})
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/vm/vms/"+id+"/exec", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+w.tokens["alice"])
		return http.DefaultClient.Do(req)
	}
	resp, err := post(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"timed_out":true`) {
		t.Errorf("a command of a second under a read timeout of 300ms: %d %s", resp.StatusCode, b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := post(ctx, 60); err == nil {
		t.Fatal("the request did not end with its context")
	}
	eventually(t, "the audit of the abandoned command", func() error {
		es := w.audits("vm.exec")
		if len(es) == 2 && !es[1].Success && strings.Contains(es[1].Error, "went away") {
			return nil
		}
		return errors.New("not yet")
	})
}

// noSessions waits until no interactive command runs in the guest: the
// closed sessions killed theirs.
func noSessions(t *testing.T, w *consoleWorld, id string) {
	t.Helper()
	eventually(t, "the interactive commands are killed", func() error {
		if n := w.proc.ExecSessions(id); n != 0 {
			return fmt.Errorf("%d still run", n)
		}
		return nil
	})
}

// dialExec opens the exec WebSocket of a VM with query q.
func dialExec(ctx context.Context, base, id, token string, q url.Values) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/vm/vms/" + id + "/exec?" + q.Encode()
	o := &websocket.DialOptions{HTTPHeader: http.Header{}, Subprotocols: []string{httpapi.WSProtocol}}
	if token != "" {
		o.HTTPHeader.Set("Authorization", "Bearer "+token)
	}
	return websocket.Dial(ctx, u, o)
}

// readExit reads output until the exit message and the close that follows.
func readExit(t *testing.T, ctx context.Context, c *websocket.Conn) (string, int, websocket.CloseError) {
	t.Helper()
	var out strings.Builder
	code := -1
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read: %v (output %q)", err, out.String())
			}
			return out.String(), code, ce
		}
		if typ == websocket.MessageBinary {
			out.Write(b)
			continue
		}
		var m struct {
			Type     string `json:"type"`
			ExitCode *int   `json:"exit_code"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Type != "exit" || m.ExitCode == nil {
			t.Fatalf("a text message %q", b)
		}
		code = *m.ExitCode
	}
}

func readBinary(t *testing.T, ctx context.Context, c *websocket.Conn, want string) {
	t.Helper()
	var got []byte
	for len(got) < len(want) {
		typ, b, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageBinary {
			t.Fatalf("read %q (got %q): %v %v", want, got, typ, err)
		}
		got = append(got, b...)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func TestExecWebSocket(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkProcVM("alice", "box", nil)
	tiny := w.mkVM("alice", "tiny", novacron.DriverQEMU, true)
	if err := w.proc.SetExecExitCode(id, 5); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A terminal: what is typed echoes, a resize shows, ^D ends it.
	c, _, err := dialExec(ctx, w.url, id, w.tokens["alice"], url.Values{"command": {"/bin/sh", "-l"}, "tty": {"1"}, "cols": {"100"}, "rows": {"40"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != httpapi.WSProtocol {
		t.Errorf("subprotocol %q", c.Subprotocol())
	}
	c.Write(ctx, websocket.MessageBinary, []byte("hello"))
	readBinary(t, ctx, c, "hello")
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","cols":132,"rows":50}`))
	readBinary(t, ctx, c, "resized to 132x50\r\n")
	c.Write(ctx, websocket.MessageBinary, []byte("bye\x04"))
	out, code, ce := readExit(t, ctx, c)
	if out != "bye" || code != 5 || ce.Code != websocket.StatusNormalClosure || ce.Reason != "the command exited with code 5" {
		t.Errorf("the end: %q, exit %d, close %v %q", out, code, ce.Code, ce.Reason)
	}

	// Pipes: eof closes the input; the tenant's operator may.
	c, _, err = dialExec(ctx, w.url, id, w.tokens["oscar"], url.Values{"command": {"/bin/cat"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Write(ctx, websocket.MessageBinary, []byte("abc"))
	readBinary(t, ctx, c, "abc")
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"eof"}`))
	if _, code, ce := readExit(t, ctx, c); code != 5 || ce.Code != websocket.StatusNormalClosure {
		t.Errorf("pipes: exit %d, close %v", code, ce)
	}

	// A text message that is no control message closes with 1003.
	for _, msg := range []string{`hello`, `{"type":"nope"}`, `{"type":"resize","cols":0,"rows":10}`} {
		c, _, err = dialExec(ctx, w.url, id, w.tokens["admin"], url.Values{"command": {"/bin/sh"}, "tty": {"1"}})
		if err != nil {
			t.Fatal(err)
		}
		c.Write(ctx, websocket.MessageText, []byte(msg))
		// Output the command wrote before may come first.
		var err error
		for range 100 {
			if _, _, err = c.Read(ctx); err != nil {
				break
			}
		}
		if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
			t.Errorf("text message %s: %v", msg, err)
		}
		c.CloseNow()
	}

	// The client closing kills the command.
	c, _, err = dialExec(ctx, w.url, id, w.tokens["alice"], url.Values{"command": {"/bin/sh"}, "tty": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := w.proc.ExecSessions(id); n != 1 {
		t.Errorf("%d commands run, want 1", n)
	}
	c.Close(websocket.StatusNormalClosure, "bye")
	noSessions(t, w, id)

	// Refusals before the upgrade, as JSON errors.
	for _, tc := range []struct {
		name, vm, user string
		q              url.Values
		status         int
		code           string
	}{
		{"no token", id, "", url.Values{"command": {"/bin/sh"}}, 401, novacron.EUnauthorized},
		{"a user who is not the owner", id, "bob", url.Values{"command": {"/bin/sh"}}, 403, novacron.EForbidden},
		{"another tenant's VM", id, "eve", url.Values{"command": {"/bin/sh"}}, 404, novacron.ENotFound},
		{"a driver that runs no commands", tiny, "alice", url.Values{"command": {"/bin/sh"}}, 400, novacron.EInvalid},
		{"no command", id, "alice", url.Values{}, 400, novacron.EInvalid},
		{"an unknown parameter", id, "alice", url.Values{"command": {"/bin/sh"}, "tyy": {"1"}}, 400, novacron.EInvalid},
		{"cols without tty", id, "alice", url.Values{"command": {"/bin/sh"}, "cols": {"80"}}, 400, novacron.EInvalid},
		{"rows too large", id, "alice", url.Values{"command": {"/bin/sh"}, "tty": {"1"}, "rows": {"10001"}}, 400, novacron.EInvalid},
		{"a bad env", id, "alice", url.Values{"command": {"/bin/sh"}, "env": {"NOEQUALS"}}, 400, novacron.EInvalid},
	} {
		c, resp, err := dialExec(ctx, w.url, tc.vm, w.tokens[tc.user], tc.q)
		if err == nil {
			c.CloseNow()
			t.Errorf("%s: opened", tc.name)
			continue
		}
		if resp == nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || errorCode(b) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, b, tc.status, tc.code)
		}
	}
	w.act("alice", id, "stop")
	if _, resp, err := dialExec(ctx, w.url, id, w.tokens["alice"], url.Values{"command": {"/bin/sh"}}); err == nil || resp == nil || resp.StatusCode != 409 {
		t.Errorf("a stopped VM: %v %v", resp, err)
	}
	// Without an upgrade, GET is a 400.
	if status, _, b := w.do("GET", "/api/vm/vms/"+id+"/exec?command=/bin/sh", w.tokens["alice"], nil); status != 400 {
		t.Errorf("GET without an upgrade: %d %s", status, b)
	}

	es := w.audits("vm.exec_interactive")
	var allowed int
	for _, e := range es {
		if e.Success {
			allowed++
		}
	}
	if len(es) != 17 || allowed != 6 {
		t.Errorf("%d vm.exec_interactive audit entries (want 17), %d allowed (want 6)", len(es), allowed)
	}
	if !strings.Contains(w.log.String(), `"msg":"exec closed"`) {
		t.Error("no log of a closed exec")
	}
}

// TestExecWebSocketShutdown: a server shutting down closes the exec
// WebSockets with 1001 and kills their commands.
func TestExecWebSocketShutdown(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkProcVM("alice", "box", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: w.api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := dialExec(ctx, "http://"+ln.Addr().String(), id, w.tokens["alice"], url.Values{"command": {"/bin/sh"}, "tty": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after shutdown: %v", err)
	}
	noSessions(t, w, id)
}

func TestLogsFollow(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkProcVM("alice", "box", map[string]any{"output": "one\ntwo\n"})
	tiny := w.mkVM("alice", "tiny", novacron.DriverQEMU, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The server's read timeout does not cut a followed log.
	srv := &http.Server{Handler: w.api.Handler(), ReadHeaderTimeout: time.Second, ReadTimeout: 300 * time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	follow := func(ctx context.Context, user, vmID, query string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/vm/vms/"+vmID+"/logs?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+w.tokens[user])
		return http.DefaultClient.Do(req)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Any member of the tenant follows them, as it reads them.
	resp, err := follow(ctx, "bob", id, "follow=1&tail=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header)
	}
	rd := bufio.NewReader(resp.Body)
	line := func() string {
		s, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read a line: %q %v", s, err)
		}
		return s
	}
	if l := line(); l != "two\n" {
		t.Errorf("the tail: %q", l)
	}
	time.Sleep(500 * time.Millisecond) // past the read timeout
	w.proc.Print(id, "three\n")
	if l := line(); l != "three\n" {
		t.Errorf("the new output: %q", l)
	}
	w.act("alice", id, "stop")
	if rest, err := io.ReadAll(rd); err != nil || len(rest) != 0 {
		t.Errorf("the end of the follow: %q %v", rest, err)
	}

	for _, tc := range []struct {
		name, user, vm, query string
		status                int
	}{
		{"a driver that cannot follow", "alice", tiny, "follow=1", 400},
		{"another tenant", "eve", id, "follow=1", 404},
		{"a bad follow", "alice", id, "follow=2", 400},
		{"a bad tail", "alice", id, "follow=1&tail=-1", 400},
	} {
		resp, err := follow(ctx, tc.user, tc.vm, tc.query)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
		}
	}
	// A VM that does not run: its log, and the end.
	resp, err = follow(ctx, "alice", id, "follow=1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "one\ntwo\nthree\n" {
		t.Errorf("a stopped VM's followed log: %q %v", b, err)
	}

	// A shutdown ends a follow.
	w.act("alice", id, "start")
	resp, err = follow(ctx, "alice", id, "follow=1&tail=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd = bufio.NewReader(resp.Body)
	line()
	t0 := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	io.ReadAll(rd)
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("the shutdown took %s", d)
	}
}

// TestExecThroughTheGoClient drives the routes with api.Client.
func TestExecThroughTheGoClient(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{})
	id := w.mkProcVM("alice", "box", map[string]any{"output": "one\n"})
	tiny := w.mkVM("alice", "tiny", novacron.DriverQEMU, true)
	w.proc.SetExecExitCode(id, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := api.New(w.url, api.WithToken(w.tokens["alice"]))

	res, err := c.Exec(ctx, id, api.ExecRequest{Command: []string{"/bin/echo", "x"}, Env: map[string]string{"K": "v"}, Cwd: "/srv"})
	if err != nil || res.ExitCode != 2 || res.Stdout != "x\n" || res.Stderr != "K=v\n/srv" {
		t.Errorf("Exec = %+v, %v", res, err)
	}
	if _, err := api.New(w.url, api.WithToken(w.tokens["bob"])).Exec(ctx, id, api.ExecRequest{Command: []string{"/bin/true"}}); !api.IsCode(err, novacron.EForbidden) {
		t.Errorf("bob: %v", err)
	}
	if _, err := c.Exec(ctx, tiny, api.ExecRequest{Command: []string{"/bin/true"}}); !api.IsCode(err, novacron.EInvalid) {
		t.Errorf("qemu: %v", err)
	}

	s, err := c.ExecInteractive(ctx, id, api.ExecOptions{Command: []string{"/bin/sh"}, TTY: true, Cols: 100, Rows: 30,
		Env: map[string]string{"TERM": "vt100"}, Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.ExitCode(); ok {
		t.Error("an exit code before the end")
	}
	big := strings.Repeat("z", 100<<10)
	go func() {
		io.WriteString(s, big)
		s.Resize(120, 40)
		io.WriteString(s, "\x04")
	}()
	out, err := io.ReadAll(s)
	if err != nil || string(out) != big+"resized to 120x40\r\n" {
		t.Errorf("the session's output: %d bytes, %v", len(out), err)
	}
	if code, ok := s.ExitCode(); !ok || code != 2 {
		t.Errorf("ExitCode = %d, %v", code, ok)
	}
	s.Close()

	s, err = c.ExecInteractive(ctx, id, api.ExecOptions{Command: []string{"/bin/cat"}})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "piped")
	s.CloseInput()
	if out, err := io.ReadAll(s); err != nil || string(out) != "piped" {
		t.Errorf("pipes: %q %v", out, err)
	}
	s.Close()
	if _, err := c.ExecInteractive(ctx, tiny, api.ExecOptions{Command: []string{"/bin/sh"}}); !api.IsCode(err, novacron.EInvalid) {
		t.Errorf("interactive in qemu: %v", err)
	}

	// Closing an open session kills its command.
	s, err = c.ExecInteractive(ctx, id, api.ExecOptions{Command: []string{"/bin/sh"}, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	noSessions(t, w, id)

	logs, err := c.FollowVMLogs(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	b := make([]byte, 4)
	if _, err := io.ReadFull(logs, b); err != nil || string(b) != "one\n" {
		t.Errorf("followed: %q %v", b, err)
	}
	w.proc.Print(id, "two\n")
	if _, err := io.ReadFull(logs, b); err != nil || string(b) != "two\n" {
		t.Errorf("followed: %q %v", b, err)
	}
	w.act("alice", id, "stop")
	if rest, err := io.ReadAll(logs); err != nil || len(rest) != 0 {
		t.Errorf("the end: %q %v", rest, err)
	}
	if _, err := c.FollowVMLogs(ctx, tiny, 0); !api.IsCode(err, novacron.EInvalid) {
		t.Errorf("follow qemu: %v", err)
	}
}
