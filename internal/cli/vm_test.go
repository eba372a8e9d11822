package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
)

// Ids of the fake VM server's VMs and operations.
const (
	idWeb    = "10000000-0000-4000-8000-000000000001"
	idDB     = "10000000-0000-4000-8000-000000000002"
	idCrashy = "10000000-0000-4000-8000-000000000003"
	idSlow   = "10000000-0000-4000-8000-000000000004"
	idDup1   = "10000000-0000-4000-8000-000000000005"
	idDup2   = "10000000-0000-4000-8000-000000000006"
	idNew    = "10000000-0000-4000-8000-0000000000ff"
	idOp     = "20000000-0000-4000-8000-000000000001"
	idNobody = "10000000-0000-4000-8000-00000000dead"
)

// fakeVMAPI implements the VM and operation endpoints the way the contract
// says: 202 and a Location for asynchronous calls, ?wait=1 answering 200
// (204 for delete), operation_failed, or 202 for the VM "slow", which never
// finishes.
type fakeVMAPI struct {
	srv *httptest.Server

	mu       sync.Mutex
	vms      []*novacron.VM
	requests []string          // "METHOD /path?query"
	bodies   map[string]string // "METHOD /path" → last body
	typed    []byte            // what consoles received
}

func newFakeVMAPI(t *testing.T) *fakeVMAPI {
	created := time.Now().Add(-3*time.Hour - 10*time.Minute).UTC()
	exit3 := 3
	f := &fakeVMAPI{bodies: map[string]string{}, vms: []*novacron.VM{
		{ID: idWeb, Name: "web", Driver: "process", State: novacron.StateRunning, NodeID: "node-1", TenantID: "t1",
			CPUs: 1, MemoryMB: 256, Config: json.RawMessage(`{"command":["/bin/sleep","3600"]}`),
			Labels: map[string]string{"app": "web", "tier": "front"}, RestartPolicy: novacron.RestartNever, CreatedAt: created},
		{ID: idDB, Name: "db", Driver: "qemu", State: novacron.StateStopped, NodeID: "node-2", TenantID: "t1",
			CPUs: 2, MemoryMB: 2048, DiskGB: 20, CreatedAt: created},
		{ID: idCrashy, Name: "crashy", Driver: "process", State: novacron.StateFailed, StateReason: "exited with code 3",
			ExitCode: &exit3, NodeID: "node-1", TenantID: "t1", CPUs: 1, MemoryMB: 128, CreatedAt: created},
		{ID: idSlow, Name: "slow", Driver: "qemu", State: novacron.StateRunning, NodeID: "node-2", TenantID: "t1",
			CPUs: 4, MemoryMB: 4096, CreatedAt: created},
		{ID: idDup1, Name: "dup", Driver: "process", State: novacron.StateStopped, TenantID: "t1", CPUs: 1, MemoryMB: 64, CreatedAt: created},
		{ID: idDup2, Name: "dup", Driver: "process", State: novacron.StateStopped, TenantID: "t2", CPUs: 1, MemoryMB: 64, CreatedAt: created},
	}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVMAPI) find(id string) *novacron.VM {
	for _, vm := range f.vms {
		if vm.ID == id {
			return vm
		}
	}
	return nil
}

func (f *fakeVMAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/console") && r.Header.Get("Upgrade") != "" {
		// A WebSocket runs outside the lock (see console_test.go).
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		w.Header().Set("X-Request-ID", "req-7")
		f.serveConsole(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.bodies[r.Method+" "+r.URL.Path] = string(body)

	w.Header().Set("X-Request-ID", "req-7")
	send := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(status int, code, msg string) {
		send(status, map[string]any{"error": map[string]any{"code": code, "message": msg, "request_id": "req-7"}})
	}
	// accepted answers an asynchronous call that has begun or, with
	// ?wait=1, that outlasted the wait.
	accepted := func(vm novacron.VM, during novacron.VMState) {
		vm.State, vm.OperationID = during, idOp
		w.Header().Set("Location", "/api/operations/"+idOp)
		send(http.StatusAccepted, vm)
	}
	if r.Header.Get("Authorization") != "Bearer tok" {
		fail(401, "unauthorized", "authentication required")
		return
	}
	q := r.URL.Query()
	wait := q.Get("wait") == "1"
	rest, _ := strings.CutPrefix(r.URL.Path, "/api/vm/vms/")
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/vm/vms":
		items := []novacron.VM{}
		for _, vm := range f.vms {
			ok := (q.Get("name") == "" || vm.Name == q.Get("name")) &&
				(q.Get("state") == "" || string(vm.State) == q.Get("state")) &&
				(q.Get("driver") == "" || vm.Driver == q.Get("driver"))
			for _, l := range q["label"] {
				k, v, _ := strings.Cut(l, "=")
				ok = ok && vm.Labels[k] == v
			}
			if ok {
				items = append(items, *vm)
			}
		}
		send(200, api.List[novacron.VM]{Items: items})
	case r.Method == "POST" && r.URL.Path == "/api/vm/vms":
		var req api.CreateVMRequest
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			fail(400, "invalid_request", err.Error())
			return
		}
		vm := novacron.VM{ID: idNew, Name: req.Name, Driver: req.Driver, CPUs: req.CPUs, MemoryMB: req.MemoryMB,
			Config: req.Config, Labels: req.Labels, TenantID: "t1", State: novacron.StateStopped}
		switch {
		case !wait:
			accepted(vm, novacron.StateCreating)
		case req.Name == "boom":
			fail(500, "operation_failed", `create boom: exec: "/nope": no such file or directory`)
		default:
			if req.Start {
				vm.State = novacron.StateRunning
			}
			send(200, vm)
		}
	case r.URL.Path == "/api/operations":
		send(200, api.List[novacron.Operation]{Items: []novacron.Operation{
			{ID: idOp, VMID: idWeb, Action: "stop", Status: novacron.OpFailed, Error: "timed out",
				CreatedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)},
		}})
	case r.URL.Path == "/api/operations/"+idOp:
		send(200, novacron.Operation{ID: idOp, VMID: idSlow, Action: "restart", Status: novacron.OpRunning,
			Phase: "stopping", UserID: "u-alice", CreatedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)})
	case strings.HasPrefix(r.URL.Path, "/api/vm/vms/") && f.find(id) == nil:
		fail(404, "not_found", "vm not found")
	case r.Method == "GET" && sub == "":
		send(200, f.find(id))
	case r.Method == "GET" && sub == "console/log":
		if f.find(id).Driver != novacron.DriverQEMU {
			fail(400, "invalid_request", "process VMs have no console")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		lines := "Linux version 6.1\r\nlogin: \r\n"
		if q.Get("tail") == "1" {
			lines = "login: \r\n"
		}
		io.WriteString(w, lines)
	case r.Method == "GET" && sub == "stats":
		vm := f.find(id)
		switch {
		case vm.Driver != novacron.DriverQEMU:
			fail(400, "invalid_request", "driver process keeps no stats")
		case vm.State != novacron.StateRunning:
			fail(409, "invalid_state", "vm "+vm.Name+" is "+string(vm.State))
		default:
			send(200, map[string]any{"cpu_seconds": 12.345, "memory_bytes": 256 << 20, "disk_read_bytes": 3 << 30,
				"disk_write_bytes": 1536, "disk_read_ops": 42, "network_rx_bytes": 0, "sampled_at": "2024-05-06T07:08:09Z"})
		}
	case r.Method == "GET" && sub == "metrics":
		send(200, map[string]any{"vm_id": id, "points": []map[string]any{
			{"ts": "2024-05-06T07:08:00Z", "cpu_usage": 12.5, "memory_usage": 40, "disk_usage": nil, "network_sent": 1234.4,
				"network_recv": nil, "iops": 3.25},
			{"ts": "2024-05-06T07:08:30Z", "cpu_usage": nil, "memory_usage": 41.01, "disk_usage": nil, "network_sent": nil,
				"network_recv": nil, "iops": nil},
		}})
	case r.Method == "GET" && sub == "logs":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		lines := []string{"starting\n", "listening on :8080\n", "\tindented {raw} output\n"}
		if n := q.Get("tail"); n == "1" {
			lines = lines[2:]
		}
		io.WriteString(w, strings.Join(lines, ""))
	case r.Method == "PUT" && sub == "":
		var req api.UpdateVMRequest
		if err := json.Unmarshal(body, &req); err != nil {
			fail(400, "invalid_request", err.Error())
			return
		}
		vm := *f.find(id)
		if req.CPUs != nil {
			vm.CPUs = *req.CPUs
		}
		if req.Labels != nil {
			vm.Labels = *req.Labels
		}
		send(200, vm)
	case r.Method == "DELETE" && sub == "":
		switch {
		case !wait:
			accepted(*f.find(id), novacron.StateDeleting)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	case r.Method == "POST":
		tr, ok := novacron.Transitions[novacron.Action(sub)]
		vm := *f.find(id)
		switch {
		case !ok:
			fail(404, "not_found", "no route")
		case !tr.Allows(vm.State):
			fail(409, "invalid_state", fmt.Sprintf("cannot %s vm %s: it is %s", sub, vm.Name, vm.State))
		case !wait || vm.Name == "slow":
			accepted(vm, tr.During)
		case vm.Name == "crashy":
			fail(500, "operation_failed", "start crashy: exited with code 3")
		default:
			vm.State = tr.To
			send(200, vm)
		}
	default:
		fail(404, "not_found", "no route "+r.URL.Path)
	}
}

func (f *fakeVMAPI) seen(req string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.requests, req)
}

func (f *fakeVMAPI) body(req string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[req]
}

func (f *fakeVMAPI) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// vmCLI returns a CLI pointed at a fake VM server with a token.
func vmCLI(t *testing.T) (*fakeVMAPI, *cli) {
	f := newFakeVMAPI(t)
	return f, newCLI(t, map[string]string{"NOVACRON_SERVER": f.srv.URL, "NOVACRON_TOKEN": "tok"})
}

func TestVMListTable(t *testing.T) {
	_, c := vmCLI(t)
	code, stdout, stderr := c.run("", "vm", "list")
	want := `NAME    STATE    DRIVER   CPUS  MEMORY   NODE    AGE  REASON
web     running  process  1     256 MB   node-1  3h   -
db      stopped  qemu     2     2048 MB  node-2  3h   -
crashy  failed   process  1     128 MB   node-1  3h   exited with code 3
slow    running  qemu     4     4096 MB  node-2  3h   -
dup     stopped  process  1     64 MB    -       3h   -
dup     stopped  process  1     64 MB    -       3h   -
`
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}

	// Without a failed VM there is no REASON column.
	out := c.mustRun("", "vm", "list", "--state", "running")
	if !strings.HasPrefix(out, "NAME  STATE    DRIVER   CPUS  MEMORY   NODE    AGE\n") || strings.Contains(out, "crashy") {
		t.Errorf("running VMs:\n%s", out)
	}
}

func TestVMListFiltersAndJSON(t *testing.T) {
	f, c := vmCLI(t)
	out := c.mustRun("", "vm", "ls", "--driver", "process", "--node", "node-1", "--label", "tier=front",
		"--label", "app=web", "--limit", "10", "-o", "json")
	if !f.seen("GET /api/vm/vms?driver=process&label=app%3Dweb&label=tier%3Dfront&limit=10&node_id=node-1") {
		t.Errorf("requests = %v", f.requestLog())
	}
	var l api.List[novacron.VM]
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(l.Items) != 1 || l.Items[0].ID != idWeb || l.Items[0].Labels["tier"] != "front" {
		t.Errorf("list = %+v", l)
	}
}

func TestVMShowByNameOrID(t *testing.T) {
	f, c := vmCLI(t)
	for _, arg := range []string{"crashy", idCrashy} {
		out := c.mustRun("", "vm", "show", arg)
		for _, want := range []string{
			"ID:              " + idCrashy + "\n",
			"State:           failed\n",
			"State reason:    exited with code 3\n",
			"Exit code:       3\n",
			"Memory:          128 MB\n",
			"Operation:       -\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("show %s lacks %q:\n%s", arg, want, out)
			}
		}
	}
	// An id is fetched directly, a name through ?name=.
	if !f.seen("GET /api/vm/vms/"+idCrashy) || !f.seen("GET /api/vm/vms?name=crashy") {
		t.Errorf("requests = %v", f.requestLog())
	}

	out := c.mustRun("", "vm", "show", "web", "-o", "json")
	var vm novacron.VM
	var config bytes.Buffer
	if err := json.Unmarshal([]byte(out), &vm); err != nil || vm.ID != idWeb ||
		json.Compact(&config, vm.Config) != nil || config.String() != `{"command":["/bin/sleep","3600"]}` {
		t.Errorf("json: %v %+v", err, vm)
	}
	if !strings.Contains(c.mustRun("", "vm", "show", "web"), "Labels:          app=web,tier=front\n") {
		t.Error("labels are not shown sorted")
	}
}

func TestVMNameResolutionErrors(t *testing.T) {
	_, c := vmCLI(t)
	for _, tc := range []struct {
		arg, stderr string
	}{
		{"nope", "error: no VM named \"nope\" (not_found)\n"},
		{idNobody, "error: no VM named or with id \"" + idNobody + "\" (not_found)\n"},
		{"dup", "error: 2 VMs are named \"dup\"; give the id of one: " + idDup1 + " (tenant t1), " + idDup2 + " (tenant t2)\n"},
	} {
		code, stdout, stderr := c.run("", "vm", "start", tc.arg)
		if code != 1 || stdout != "" || stderr != tc.stderr {
			t.Errorf("%s: exit %d, stdout %q, stderr %q, want %q", tc.arg, code, stdout, stderr, tc.stderr)
		}
	}
	// The id settles the ambiguity.
	if out := c.mustRun("", "vm", "start", idDup2); out != "VM dup: starting (operation "+idOp+").\n" {
		t.Errorf("start by id printed %q", out)
	}
}

func TestVMCreate(t *testing.T) {
	f, c := vmCLI(t)
	out := c.mustRun("", "vm", "create", "web2", "--driver", "process", "--memory-mb", "64", "--label", "app=web",
		"--env", "A=1", "--env", "B=x=y", "--cwd", "/srv", "--restart-policy", "on-failure", "--autostart",
		"--node-selector", "zone=a", "--start", "--wait", "--", "/bin/sleep", "--not-a-flag", "3600")
	want := `{"name":"web2","driver":"process","cpus":1,"memory_mb":64,` +
		`"config":{"command":["/bin/sleep","--not-a-flag","3600"],"env":{"A":"1","B":"x=y"},"cwd":"/srv"},` +
		`"labels":{"app":"web"},"node_selector":{"zone":"a"},"start":true,"restart_policy":"on-failure","autostart":true}`
	if got := f.body("POST /api/vm/vms"); got != want {
		t.Errorf("body = %s\nwant   %s", got, want)
	}
	if !f.seen("POST /api/vm/vms?timeout=60s&wait=1") {
		t.Errorf("requests = %v", f.requestLog())
	}
	if !strings.Contains(out, "State:           running\n") || !strings.Contains(out, "Name:            web2\n") {
		t.Errorf("output:\n%s", out)
	}

	// Without --wait: the VM as it is being created, with its operation.
	out = c.mustRun("", "vm", "create", "vm3", "--driver", "qemu", "--driver-config", `{ "accel": "tcg" }`, "-o", "json")
	var vm novacron.VM
	if err := json.Unmarshal([]byte(out), &vm); err != nil || vm.State != novacron.StateCreating || vm.OperationID != idOp {
		t.Errorf("%v: %+v", err, vm)
	}
	if got := f.body("POST /api/vm/vms"); got != `{"name":"vm3","driver":"qemu","cpus":1,"memory_mb":256,"config":{"accel":"tcg"}}` {
		t.Errorf("body = %s", got)
	}
}

func TestVMCreateOperationFailed(t *testing.T) {
	_, c := vmCLI(t)
	code, stdout, stderr := c.run("", "vm", "create", "boom", "--driver", "process", "--wait", "--", "/nope")
	if code != 1 || stdout != "" ||
		stderr != "error: create boom: exec: \"/nope\": no such file or directory (operation_failed, request req-7)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestVMActions(t *testing.T) {
	f, c := vmCLI(t)
	for _, tc := range []struct {
		args    []string
		code    int
		stdout  string
		stderr  string
		request string
	}{
		{
			args: []string{"start", "db", "--wait"}, stdout: "VM db: running.\n",
			request: "POST /api/vm/vms/" + idDB + "/start?timeout=60s&wait=1",
		},
		{
			args: []string{"start", "db"}, stdout: "VM db: starting (operation " + idOp + ").\n",
			request: "POST /api/vm/vms/" + idDB + "/start",
		},
		{
			args: []string{"pause", "web", "--wait", "--timeout", "90s"}, stdout: "VM web: paused.\n",
			request: "POST /api/vm/vms/" + idWeb + "/pause?timeout=90s&wait=1",
		},
		{
			args: []string{"start", "crashy", "--wait"}, code: 1,
			stderr: "error: start crashy: exited with code 3 (operation_failed, request req-7)\n",
		},
		{
			args: []string{"restart", "slow", "--wait", "--timeout", "2s"}, code: 1,
			stdout:  "VM slow: restarting (operation " + idOp + ").\n",
			stderr:  "error: operation " + idOp + " is still running after 2s; it goes on: follow it with 'novacron operation show " + idOp + "'\n",
			request: "POST /api/vm/vms/" + idSlow + "/restart?timeout=2s&wait=1",
		},
		{
			args: []string{"resume", "web"}, code: 1,
			stderr: "error: cannot resume vm web: it is running (invalid_state, request req-7)\n",
		},
	} {
		code, stdout, stderr := c.run("", append([]string{"vm"}, tc.args...)...)
		if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
			t.Errorf("%v: exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q",
				tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
		}
		if tc.request != "" && !f.seen(tc.request) {
			t.Errorf("%v: no %s in %v", tc.args, tc.request, f.requestLog())
		}
	}
}

func TestVMStop(t *testing.T) {
	f, c := vmCLI(t)
	out := c.mustRun("", "vm", "stop", "web", "--force", "--timeout-s", "5", "-o", "json")
	var vm novacron.VM
	if err := json.Unmarshal([]byte(out), &vm); err != nil || vm.State != novacron.StateStopping {
		t.Errorf("%v: %+v", err, vm)
	}
	if got := f.body("POST /api/vm/vms/" + idWeb + "/stop"); got != `{"force":true,"timeout_s":5}` {
		t.Errorf("body = %s", got)
	}
	c.mustRun("", "vm", "stop", "web", "--wait")
	if got := f.body("POST /api/vm/vms/" + idWeb + "/stop"); got != `{}` {
		t.Errorf("body without options = %s", got)
	}
}

func TestVMDelete(t *testing.T) {
	f, c := vmCLI(t)
	if out := c.mustRun("", "vm", "rm", "web", "--wait"); out != "Deleted VM web ("+idWeb+").\n" {
		t.Errorf("printed %q", out)
	}
	if !f.seen("DELETE /api/vm/vms/" + idWeb + "?timeout=60s&wait=1") {
		t.Errorf("requests = %v", f.requestLog())
	}
	out := c.mustRun("", "vm", "delete", "db", "--wait", "-o", "json")
	if out != "{\n  \"id\": \""+idDB+"\",\n  \"name\": \"db\",\n  \"deleted\": true\n}\n" {
		t.Errorf("json: %s", out)
	}
	if out := c.mustRun("", "vm", "delete", "db"); out != "VM db: deleting (operation "+idOp+").\n" {
		t.Errorf("without wait: %q", out)
	}
}

func TestVMUpdate(t *testing.T) {
	f, c := vmCLI(t)
	out := c.mustRun("", "vm", "update", "web", "--cpus", "2", "--label", "tier=back", "--label", "app-",
		"--label", "env=prod", "--autostart=false")
	if got := f.body("PUT /api/vm/vms/" + idWeb); got != `{"cpus":2,"labels":{"env":"prod","tier":"back"},"autostart":false}` {
		t.Errorf("body = %s", got)
	}
	if !strings.Contains(out, "CPUs:            2\n") || !strings.Contains(out, "Labels:          env=prod,tier=back\n") {
		t.Errorf("output:\n%s", out)
	}
	c.mustRun("", "vm", "update", "db", "--name", "db2", "--restart-policy", "always")
	if got := f.body("PUT /api/vm/vms/" + idDB); got != `{"name":"db2","restart_policy":"always"}` {
		t.Errorf("body = %s", got)
	}
}

func TestVMLogs(t *testing.T) {
	f, c := vmCLI(t)
	if out := c.mustRun("", "vm", "logs", "web"); out != "starting\nlistening on :8080\n\tindented {raw} output\n" {
		t.Errorf("logs = %q", out)
	}
	if out := c.mustRun("", "vm", "logs", "web", "--tail", "1", "-o", "json"); out != "\tindented {raw} output\n" {
		t.Errorf("logs --tail 1 = %q", out)
	}
	if !f.seen("GET /api/vm/vms/" + idWeb + "/logs?tail=1") {
		t.Errorf("requests = %v", f.requestLog())
	}
}

func TestOperationListAndShow(t *testing.T) {
	f, c := vmCLI(t)
	out := c.mustRun("", "operation", "list", "--vm", "web", "--status", "failed")
	want := "ID                                    VM                                    ACTION  STATUS  CREATED               FINISHED  ERROR\n" +
		idOp + "  " + idWeb + "  stop    failed  2024-05-06T07:08:09Z  -         timed out\n"
	if out != want {
		t.Errorf("list:\n%s\nwant:\n%s", out, want)
	}
	if !f.seen("GET /api/operations?status=failed&vm_id=" + idWeb) {
		t.Errorf("requests = %v", f.requestLog())
	}
	// A VM id is taken as is: the VM may be gone.
	c.mustRun("", "op", "ls", "--vm", idNobody)
	if !f.seen("GET /api/operations?vm_id=" + idNobody) {
		t.Errorf("requests = %v", f.requestLog())
	}

	out = c.mustRun("", "op", "show", idOp)
	for _, want := range []string{"Action:    restart\n", "Status:    running\n", "Phase:     stopping\n", "Finished:  -\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	out = c.mustRun("", "operation", "show", idOp, "-o", "json")
	var op novacron.Operation
	if err := json.Unmarshal([]byte(out), &op); err != nil || op.VMID != idSlow || op.FinishedAt != nil {
		t.Errorf("%v: %+v", err, op)
	}
}

func TestVMUsageErrors(t *testing.T) {
	f, c := vmCLI(t)
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"vm", "create", "x", "--", "/bin/true"}, `required flag(s) "driver" not set`},
		{[]string{"vm", "create", "x", "--driver", "process"}, "a process needs a command"},
		{[]string{"vm", "create", "x", "y", "--driver", "process"}, "give one NAME, then the command after --"},
		{[]string{"vm", "create", "--driver", "process", "--", "/bin/true"}, "give one NAME"},
		{[]string{"vm", "create", "x", "--driver", "process", "--"}, "no command after --"},
		{[]string{"vm", "create", "x", "--driver", "qemu", "--", "/bin/true"}, "a qemu VM takes no command"},
		{[]string{"vm", "create", "x", "--driver", "process", "--driver-config", "[1]"}, "want a JSON object"},
		{[]string{"vm", "create", "x", "--driver", "process", "--driver-config", "{}", "--", "/bin/true"}, "inside --driver-config"},
		{[]string{"vm", "create", "x", "--driver", "process", "--label", "nokey", "--", "/bin/true"}, `--label "nokey": want KEY=VALUE`},
		{[]string{"vm", "create", "x", "--driver", "docker"}, "must be one of process, container, qemu"},
		{[]string{"vm", "create", "x", "--driver", "qemu", "--restart-policy", "sometimes"}, "must be one of never, on-failure, always"},
		{[]string{"vm", "start", "web", "--wait", "--timeout", "10m"}, "at most 5m0s"},
		{[]string{"vm", "stop", "web", "--timeout-s", "-1"}, "--timeout-s must not be negative"},
		{[]string{"vm", "list", "--state", "sleeping"}, "must be one of creating, stopped"},
		{[]string{"vm", "update", "web"}, "nothing to change"},
		{[]string{"vm", "update", "web", "--label", "=x"}, "want KEY=VALUE or KEY-"},
		{[]string{"vm", "logs", "web", "--tail", "-1"}, "--tail must not be negative"},
		{[]string{"vm", "show"}, "accepts 1 arg(s), received 0"},
		{[]string{"operation", "list", "--status", "done"}, "must be one of running, succeeded, failed"},
	} {
		code, stdout, stderr := c.run("", tc.args...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, tc.stderr) ||
			!strings.Contains(stderr, "--help' for usage.") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, stdout, stderr)
		}
	}
	for _, r := range f.requestLog() {
		if !strings.HasPrefix(r, "GET ") {
			t.Errorf("a usage error still changed something: %s", r)
		}
	}
}

func TestBuildConfig(t *testing.T) {
	for _, tc := range []struct {
		driver, raw string
		command     []string
		env         map[string]string
		want        string
	}{
		{driver: "process", command: []string{"/bin/sleep", "1"}, want: `{"command":["/bin/sleep","1"]}`},
		{driver: "container", env: map[string]string{"A": "1"}, want: `{"env":{"A":"1"}}`},
		{driver: "qemu", want: ``},
		{driver: "qemu", raw: "{\n \"accel\": \"kvm\"\n}", want: `{"accel":"kvm"}`},
	} {
		got, err := buildConfig(tc.driver, tc.raw, tc.command, tc.env, "")
		if err != nil || string(got) != tc.want {
			t.Errorf("%+v: %s, %v", tc, got, err)
		}
	}
}

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{
		idWeb:                                  true,
		strings.ToUpper(idWeb):                 true,
		"web":                                  false,
		"10000000-0000-4000-8000-00000000000g": false,
		"10000000_0000-4000-8000-000000000001": false,
		"":                                     false,
	} {
		if isUUID(s) != want {
			t.Errorf("isUUID(%q) = %v", s, !want)
		}
	}
}

func TestFmtAge(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{
		5 * time.Second:       "5s",
		90 * time.Second:      "1m",
		47 * time.Hour:        "47h",
		50 * time.Hour:        "2d",
		-time.Minute:          "0s", // a clock ahead of ours
		400 * 24 * time.Hour:  "400d",
		59*time.Minute + 59e9: "59m",
	} {
		if got := fmtAge(now.Add(-d)); got != want {
			t.Errorf("fmtAge(now-%s) = %q, want %q", d, got, want)
		}
	}
	if fmtAge(time.Time{}) != "" {
		t.Error("zero time has an age")
	}
}
