package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
)

// canned is one prepared answer of a cannedServer.
type canned struct {
	status   int
	location string
	ctype    string
	body     string
}

// cannedServer answers each "METHOD /path" with a prepared answer and
// records the requests it got.
type cannedServer struct {
	mu      sync.Mutex
	answers map[string]canned
	reqs    []*http.Request
	bodies  []string
}

func newCannedServer(t *testing.T, answers map[string]canned) (*api.Client, *cannedServer) {
	t.Helper()
	s := &cannedServer{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return api.New(srv.URL, api.WithToken("tok")), s
}

func (s *cannedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.bodies = append(s.bodies, string(body))
	a, ok := s.answers[r.Method+" "+r.URL.EscapedPath()]
	s.mu.Unlock()
	if !ok {
		a = canned{status: 404, body: `{"error":{"code":"not_found","message":"no route","request_id":"r1"}}`}
	}
	if a.location != "" {
		w.Header().Set("Location", a.location)
	}
	if a.ctype == "" {
		a.ctype = "application/json"
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("X-Request-ID", "r1")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

// last returns the last request and its body.
func (s *cannedServer) last(t *testing.T) (*http.Request, string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("no request was sent")
	}
	return s.reqs[len(s.reqs)-1], s.bodies[len(s.bodies)-1]
}

const (
	vmID = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	opID = "0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
)

func vmJSON(state, reason, op string) string {
	b, _ := json.Marshal(novacron.VM{ID: vmID, Name: "web", Driver: "process", State: novacron.VMState(state),
		StateReason: reason, CPUs: 1, MemoryMB: 256, OperationID: op, Config: json.RawMessage(`{}`)})
	return string(b)
}

const opFailed = `{"error":{"code":"operation_failed","message":"start web: exec: \"/nope\": no such file","request_id":"r9"}}`

func TestCreateVM(t *testing.T) {
	ctx := context.Background()
	c, s := newCannedServer(t, map[string]canned{
		"POST /api/vm/vms": {status: 202, location: "/api/operations/" + opID, body: vmJSON("creating", "", opID)},
	})
	yes := true
	vm, err := c.CreateVM(ctx, api.CreateVMRequest{
		Name: "web", Driver: novacron.DriverProcess, CPUs: 1, MemoryMB: 256,
		Config:       json.RawMessage(`{"command":["/bin/sleep","3600"]}`),
		Labels:       map[string]string{"app": "web"},
		NodeSelector: map[string]string{"zone": "a"},
		Start:        true, RestartPolicy: novacron.RestartOnFailure, Autostart: &yes,
	}, api.WaitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vm.ID != vmID || vm.State != novacron.StateCreating || vm.OperationID != opID {
		t.Errorf("vm = %+v", vm)
	}
	r, body := s.last(t)
	want := `{"name":"web","driver":"process","cpus":1,"memory_mb":256,"config":{"command":["/bin/sleep","3600"]},` +
		`"labels":{"app":"web"},"node_selector":{"zone":"a"},"start":true,"restart_policy":"on-failure","autostart":true}`
	if body != want {
		t.Errorf("body = %s\nwant   %s", body, want)
	}
	if r.URL.RawQuery != "" {
		t.Errorf("query = %q, want none without wait", r.URL.RawQuery)
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "Bearer tok" {
		t.Errorf("headers = %v", r.Header)
	}

	// The minimal request leaves every optional field out.
	b, _ := json.Marshal(api.CreateVMRequest{Name: "x", Driver: "qemu", CPUs: 2, MemoryMB: 512})
	if string(b) != `{"name":"x","driver":"qemu","cpus":2,"memory_mb":512}` {
		t.Errorf("minimal body = %s", b)
	}
}

func TestWaitSemantics(t *testing.T) {
	ctx := context.Background()
	c, s := newCannedServer(t, map[string]canned{
		"POST /api/vm/vms/" + vmID + "/start":   {status: 200, body: vmJSON("running", "", "")},
		"POST /api/vm/vms/" + vmID + "/restart": {status: 202, location: "/api/operations/" + opID, body: vmJSON("restarting", "", opID)},
		"POST /api/vm/vms/" + vmID + "/pause":   {status: 202, body: vmJSON("running", "", "op-from-body")},
		"POST /api/vm/vms/" + vmID + "/resume":  {status: 500, body: opFailed},
		"POST /api/vm/vms/" + vmID + "/stop":    {status: 202, location: "http://elsewhere/api/operations/" + opID, body: vmJSON("stopping", "", opID)},
	})

	t.Run("success", func(t *testing.T) {
		vm, err := c.StartVM(ctx, vmID, api.WaitOptions{Wait: true, Timeout: 90 * time.Second})
		if err != nil || vm.State != novacron.StateRunning {
			t.Fatalf("vm %+v, err %v", vm, err)
		}
		r, body := s.last(t)
		if r.URL.RawQuery != "timeout=90s&wait=1" || body != "" {
			t.Errorf("query %q, body %q", r.URL.RawQuery, body)
		}
	})
	t.Run("still running", func(t *testing.T) {
		vm, err := c.RestartVM(ctx, vmID, api.WaitOptions{Wait: true, Timeout: 1500 * time.Millisecond})
		if !errors.Is(err, api.ErrStillRunning) {
			t.Fatalf("err = %v, want ErrStillRunning", err)
		}
		var sr *api.StillRunningError
		if !errors.As(err, &sr) || sr.OperationID != opID || sr.Timeout != 1500*time.Millisecond {
			t.Errorf("err = %#v", err)
		}
		if got := err.Error(); got != "operation "+opID+" is still running after 1.5s" {
			t.Errorf("Error() = %q", got)
		}
		if vm == nil || vm.State != novacron.StateRestarting {
			t.Errorf("vm = %+v, want the VM as it was", vm)
		}
		if api.ErrorCode(err) != "" {
			t.Errorf("a still-running wait has API code %q", api.ErrorCode(err))
		}
		if r, _ := s.last(t); r.URL.Query().Get("timeout") != "1.5s" {
			t.Errorf("query = %q", r.URL.RawQuery)
		}
	})
	t.Run("still running without Location", func(t *testing.T) {
		_, err := c.PauseVM(ctx, vmID, api.WaitOptions{Wait: true})
		var sr *api.StillRunningError
		if !errors.As(err, &sr) || sr.OperationID != "op-from-body" {
			t.Errorf("err = %#v", err)
		}
		if r, _ := s.last(t); r.URL.RawQuery != "wait=1" {
			t.Errorf("query = %q, want the server's default timeout", r.URL.RawQuery)
		}
	})
	t.Run("a 202 without wait is no error", func(t *testing.T) {
		vm, err := c.PauseVM(ctx, vmID, api.WaitOptions{Timeout: time.Minute})
		if err != nil || vm.OperationID != "op-from-body" {
			t.Errorf("vm %+v, err %v", vm, err)
		}
		if r, _ := s.last(t); r.URL.RawQuery != "" {
			t.Errorf("query = %q: a timeout without wait is not sent", r.URL.RawQuery)
		}
	})
	t.Run("operation failed", func(t *testing.T) {
		vm, err := c.ResumeVM(ctx, vmID, api.WaitOptions{Wait: true})
		var e *api.Error
		if !errors.As(err, &e) || e.Code != novacron.EOperationFailed || e.Status != 500 ||
			!strings.Contains(e.Message, "no such file") || vm != nil {
			t.Fatalf("vm %+v, err %#v", vm, err)
		}
		if errors.Is(err, api.ErrStillRunning) {
			t.Error("a failure matches ErrStillRunning")
		}
	})
	t.Run("stop body and absolute Location", func(t *testing.T) {
		_, err := c.StopVM(ctx, vmID, api.StopOptions{Force: true, TimeoutS: 5}, api.WaitOptions{Wait: true})
		var sr *api.StillRunningError
		if !errors.As(err, &sr) || sr.OperationID != opID {
			t.Errorf("err = %#v", err)
		}
		if r, body := s.last(t); body != `{"force":true,"timeout_s":5}` || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("stop body = %s", body)
		}
		c.StopVM(ctx, vmID, api.StopOptions{}, api.WaitOptions{})
		if _, body := s.last(t); body != `{}` {
			t.Errorf("stop body without options = %q, want {}", body)
		}
	})
}

func TestDeleteVM(t *testing.T) {
	ctx := context.Background()
	c, s := newCannedServer(t, map[string]canned{
		"DELETE /api/vm/vms/" + vmID: {status: 202, location: "/api/operations/" + opID, body: vmJSON("deleting", "", opID)},
		"DELETE /api/vm/vms/gone":    {status: 204},
		"DELETE /api/vm/vms/nobody":  {status: 202, location: "/api/operations/" + opID},
	})
	vm, err := c.DeleteVM(ctx, vmID, api.WaitOptions{})
	if err != nil || vm.State != novacron.StateDeleting {
		t.Errorf("vm %+v, err %v", vm, err)
	}
	vm, err = c.DeleteVM(ctx, "gone", api.WaitOptions{Wait: true})
	if err != nil || vm != nil {
		t.Errorf("204: vm %+v, err %v", vm, err)
	}
	if r, _ := s.last(t); r.Method != "DELETE" || r.URL.RawQuery != "wait=1" {
		t.Errorf("request = %s %s", r.Method, r.URL)
	}
	// A 202 without a body still reports the operation.
	vm, err = c.DeleteVM(ctx, "nobody", api.WaitOptions{Wait: true, Timeout: time.Second})
	var sr *api.StillRunningError
	if vm != nil || !errors.As(err, &sr) || sr.OperationID != opID {
		t.Errorf("vm %+v, err %v", vm, err)
	}
	if _, err := c.DeleteVM(ctx, "", api.WaitOptions{}); !api.IsCode(err, novacron.EInvalid) {
		t.Errorf("empty id: err = %v", err)
	}
}

func TestListVMsQuery(t *testing.T) {
	c, s := newCannedServer(t, map[string]canned{
		"GET /api/vm/vms": {status: 200, body: `{"items":[` + vmJSON("running", "", "") + `],"next_cursor":"c2"}`},
	})
	l, err := c.ListVMs(context.Background(), api.VMFilter{
		State: novacron.StateRunning, NodeID: "n1", Driver: "process", Name: "web",
		Labels: map[string]string{"tier": "front", "app": "web"}, Limit: 5, Cursor: "c1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].ID != vmID || l.NextCursor != "c2" {
		t.Errorf("list = %+v", l)
	}
	r, _ := s.last(t)
	want := "cursor=c1&driver=process&label=app%3Dweb&label=tier%3Dfront&limit=5&name=web&node_id=n1&state=running"
	if r.URL.RawQuery != want {
		t.Errorf("query = %s\nwant    %s", r.URL.RawQuery, want)
	}
	if got := r.URL.Query()["label"]; len(got) != 2 || got[0] != "app=web" {
		t.Errorf("labels = %q", got)
	}
	c.ListVMs(context.Background(), api.VMFilter{})
	if r, _ := s.last(t); r.URL.RawQuery != "" {
		t.Errorf("empty filter query = %q", r.URL.RawQuery)
	}
}

func TestGetAndUpdateVM(t *testing.T) {
	ctx := context.Background()
	c, s := newCannedServer(t, map[string]canned{
		"GET /api/vm/vms/" + vmID: {status: 200, body: `{"id":"` + vmID + `","name":"web","state":"failed",` +
			`"state_reason":"exited with code 3","exit_code":3,"config":{"command":["x"]},"labels":{"a":"b"}}`},
		"PUT /api/vm/vms/" + vmID: {status: 200, body: vmJSON("stopped", "", "")},
		"PUT /api/vm/vms/busy":    {status: 409, body: `{"error":{"code":"invalid_state","message":"vm web is running"}}`},
	})
	vm, err := c.GetVM(ctx, vmID)
	if err != nil {
		t.Fatal(err)
	}
	if vm.ExitCode == nil || *vm.ExitCode != 3 || vm.StateReason != "exited with code 3" ||
		string(vm.Config) != `{"command":["x"]}` || vm.Labels["a"] != "b" {
		t.Errorf("vm = %+v", vm)
	}

	name, cpus, policy, labels := "web2", 2, novacron.RestartAlways, map[string]string{}
	if _, err := c.UpdateVM(ctx, vmID, api.UpdateVMRequest{Name: &name, CPUs: &cpus, RestartPolicy: &policy, Labels: &labels}); err != nil {
		t.Fatal(err)
	}
	if r, body := s.last(t); r.Method != "PUT" || body != `{"name":"web2","cpus":2,"labels":{},"restart_policy":"always"}` {
		t.Errorf("%s body = %s", r.Method, body)
	}
	if _, err := c.UpdateVM(ctx, "busy", api.UpdateVMRequest{CPUs: &cpus}); !api.IsCode(err, novacron.EInvalidState) {
		t.Errorf("err = %v", err)
	}
	if _, err := c.GetVM(ctx, "a/b"); !api.IsCode(err, novacron.ENotFound) {
		t.Errorf("err = %v", err)
	}
	if r, _ := s.last(t); r.URL.EscapedPath() != "/api/vm/vms/a%2Fb" {
		t.Errorf("path = %s", r.URL.EscapedPath())
	}
}

func TestVMLogs(t *testing.T) {
	ctx := context.Background()
	logs := "line 1\nline 2 {not json}\n"
	c, s := newCannedServer(t, map[string]canned{
		"GET /api/vm/vms/" + vmID + "/logs": {status: 200, ctype: "text/plain; charset=utf-8", body: logs},
		"GET /api/vm/vms/qemu/logs":         {status: 400, body: `{"error":{"code":"invalid_request","message":"qemu VMs have no logs; see the console log"}}`},
	})
	b, err := c.VMLogs(ctx, vmID, 50)
	if err != nil || string(b) != logs {
		t.Fatalf("logs %q, err %v", b, err)
	}
	r, _ := s.last(t)
	if r.URL.RawQuery != "tail=50" || r.Header.Get("Accept") != "text/plain" {
		t.Errorf("query %q, Accept %q", r.URL.RawQuery, r.Header.Get("Accept"))
	}
	c.VMLogs(ctx, vmID, 0)
	if r, _ := s.last(t); r.URL.RawQuery != "" {
		t.Errorf("tail 0 sent query %q", r.URL.RawQuery)
	}
	if _, err := c.VMLogs(ctx, "qemu", 0); !api.IsCode(err, novacron.EInvalid) || !strings.Contains(err.Error(), "console log") {
		t.Errorf("err = %v", err)
	}
}

func TestOperations(t *testing.T) {
	ctx := context.Background()
	c, s := newCannedServer(t, map[string]canned{
		"GET /api/operations/" + opID: {status: 200, body: `{"id":"` + opID + `","vm_id":"` + vmID +
			`","action":"start","status":"failed","error":"exec: no such file","created_at":"2024-05-06T07:08:09Z","finished_at":"2024-05-06T07:08:10Z"}`},
		"GET /api/operations": {status: 200, body: `{"items":[{"id":"` + opID + `","status":"running","finished_at":null}],"next_cursor":""}`},
	})
	op, err := c.GetOperation(ctx, opID)
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != novacron.OpFailed || op.Action != "start" || op.Error != "exec: no such file" ||
		op.FinishedAt == nil || op.FinishedAt.Sub(op.CreatedAt) != time.Second {
		t.Errorf("op = %+v", op)
	}
	l, err := c.ListOperations(ctx, api.OperationFilter{VMID: vmID, Status: novacron.OpRunning, Limit: 10})
	if err != nil || len(l.Items) != 1 || l.Items[0].FinishedAt != nil {
		t.Fatalf("list %+v, err %v", l, err)
	}
	if r, _ := s.last(t); r.URL.RawQuery != "limit=10&status=running&vm_id="+vmID {
		t.Errorf("query = %s", r.URL.RawQuery)
	}
	if _, err := c.GetOperation(ctx, ""); !api.IsCode(err, novacron.EInvalid) {
		t.Errorf("empty id: err = %v", err)
	}
}
