package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/nodeclient"
	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/testenv"
)

// requireGuests skips (or, in CI, fails) when real process guests cannot
// run here: they need root for cgroups and uids.
func requireGuests(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root", "process guests need root for their cgroups and uids")
	}
}

func fastReconcile(c *server.Config) {
	c.ReconcileInterval = 200 * time.Millisecond
	c.StopTimeout = 5 * time.Second
}

// cleanGuests stops and deletes every guest of the server's node when the
// test ends, so that no test leaves a process behind.
func cleanGuests(t *testing.T, h *harness) {
	ag := h.srv.Agent()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		guests, err := ag.ListGuests(ctx)
		if err != nil {
			t.Errorf("list guests: %v", err)
			return
		}
		for _, g := range guests {
			_ = ag.StopGuest(ctx, g.ID, time.Second, true)
			if err := ag.DeleteGuest(ctx, g.ID); err != nil {
				t.Errorf("delete guest %s: %v", g.ID, err)
			}
		}
	})
}

func processVM(name string, argv ...string) map[string]any {
	return map[string]any{"name": name, "driver": "process", "cpus": 1, "memory_mb": 64,
		"config": map[string]any{"command": argv}}
}

// pidOf is the guest's pid as its node reports it.
func pidOf(t *testing.T, h *harness, id string) int {
	t.Helper()
	st, err := h.srv.Agent().GuestStatus(context.Background(), id)
	if err != nil || st.PID == 0 {
		t.Fatalf("guest %s status %+v, %v", id, st, err)
	}
	return st.PID
}

// procField reads a field of /proc/PID/status.
func procField(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// alive reports whether pid runs (a zombie is dead).
func alive(pid int) bool {
	s := procField(pid, "State")
	return s != "" && !strings.HasPrefix(s, "Z") && !strings.HasPrefix(s, "X")
}

// cgroupFile reads a file of the pid's cgroup of a controller (v1), or of
// its unified cgroup (v2, controller "").
func cgroupFile(t *testing.T, pid int, controller, v1file, v2file string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var v1, v2 string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				v1 = parts[2]
			}
		}
		if parts[0] == "0" {
			v2 = parts[2]
		}
	}
	if v1 != "" {
		if out, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, v1, v1file)); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	out, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", v2, v2file))
	if err != nil {
		t.Fatalf("pid %d: no %s cgroup file: %v", pid, controller, err)
	}
	return strings.TrimSpace(string(out))
}

// eventually polls f until it returns nil or a generous deadline (90 s)
// passes: the machine may be loaded.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestVMLifecycleOnTheHost(t *testing.T) {
	requireGuests(t)
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), fastReconcile)
		cleanGuests(t, h)
		admin := h.admin()

		r := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, map[string]any{"name": "web", "driver": "process",
			"cpus": 1, "memory_mb": 64, "start": true, "labels": map[string]string{"tier": "front"},
			"config": map[string]any{"command": []string{"/bin/sh", "-c", "echo hello from the guest; exec sleep 3600"}}}), 200)
		id := r.str("id")
		if r.str("state") != "running" || r.str("node_status") != "online" {
			t.Fatalf("created %s", r.raw)
		}
		pid := pidOf(t, h, id)
		if uid := procField(pid, "Uid"); uid == "" || strings.HasPrefix(uid, "0\t") {
			t.Fatalf("guest uid %q: must not be root", uid)
		}
		if nnp := procField(pid, "NoNewPrivs"); nnp != "1" {
			t.Errorf("NoNewPrivs %q", nnp)
		}
		if lim := cgroupFile(t, pid, "memory", "memory.limit_in_bytes", "memory.max"); lim != fmt.Sprint(64<<20) {
			t.Errorf("memory limit %s, want %d", lim, 64<<20)
		}
		eventually(t, "logs", func() error {
			l := h.req("GET", "/api/vm/vms/"+id+"/logs", admin, nil)
			if l.status != 200 || !bytes.Contains(l.raw, []byte("hello from the guest")) {
				return fmt.Errorf("logs %d %q", l.status, l.raw)
			}
			return nil
		})

		// Pause freezes the cgroup; resume thaws it.
		p := h.want(h.req("POST", "/api/vm/vms/"+id+"/pause", admin, nil), 202)
		if p.str("state") != "paused" || p.header.Get("Location") == "" {
			t.Fatalf("pause answered %s", p.raw)
		}
		if f := cgroupFile(t, pid, "freezer", "freezer.state", "cgroup.freeze"); f != "FROZEN" && f != "1" {
			t.Errorf("paused guest's freezer: %q", f)
		}
		h.want(h.req("POST", "/api/vm/vms/"+id+"/pause", admin, nil), 409, "invalid_state")
		h.want(h.req("PUT", "/api/vm/vms/"+id, admin, map[string]any{"cpus": 2}), 409, "invalid_state")
		if r := h.want(h.req("POST", "/api/vm/vms/"+id+"/resume", admin, nil), 202); r.str("state") != "running" {
			t.Fatalf("resume answered %s", r.raw)
		}
		if f := cgroupFile(t, pid, "freezer", "freezer.state", "cgroup.freeze"); f != "THAWED" && f != "0" {
			t.Errorf("resumed guest's freezer: %q", f)
		}
		h.want(h.req("POST", "/api/vm/vms/"+id+"/start", admin, nil), 409, "invalid_state")

		// Restart gives a new process; stop leaves none.
		h.want(h.req("POST", "/api/vm/vms/"+id+"/restart?wait=1", admin, nil), 200)
		pid2 := pidOf(t, h, id)
		if pid2 == pid || alive(pid) {
			t.Fatalf("restart: old pid %d alive=%v, new pid %d", pid, alive(pid), pid2)
		}
		s := h.want(h.req("POST", "/api/vm/vms/"+id+"/stop?wait=1", admin, map[string]any{"timeout_s": 5}), 200)
		if s.str("state") != "stopped" || alive(pid2) {
			t.Fatalf("stop: %s, pid alive %v", s.raw, alive(pid2))
		}
		// A stopped VM can be resized, within bounds.
		h.want(h.req("PUT", "/api/vm/vms/"+id, admin, map[string]any{"cpus": 2, "memory_mb": 96}), 200)
		h.want(h.req("POST", "/api/vm/vms/"+id+"/start?wait=1", admin, nil), 200)
		pid3 := pidOf(t, h, id)
		if lim := cgroupFile(t, pid3, "memory", "memory.limit_in_bytes", "memory.max"); lim != fmt.Sprint(96<<20) {
			t.Errorf("memory limit after resize %s, want %d", lim, 96<<20)
		}

		// Delete stops the guest and removes everything.
		h.want(h.req("DELETE", "/api/vm/vms/"+id+"?wait=1", admin, nil), 204)
		if alive(pid3) {
			t.Fatal("guest alive after delete")
		}
		h.want(h.req("GET", "/api/vm/vms/"+id, admin, nil), 404)
		guests, _ := h.srv.Agent().ListGuests(context.Background())
		if len(guests) != 0 {
			t.Fatalf("guests left: %+v", guests)
		}
		ops := h.want(h.req("GET", "/api/operations?vm_id="+id+"&limit=500", admin, nil), 200).items()
		// create, pause, resume, restart, stop, start, delete: the refused
		// actions recorded none.
		if len(ops) != 7 {
			t.Errorf("%d operations recorded, want 7", len(ops))
		}
		for _, op := range ops {
			if op["status"] != "succeeded" {
				t.Errorf("operation %v", op)
			}
		}
	})
}

func TestVMInputTenancyAndQuotas(t *testing.T) {
	requireGuests(t)
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), fastReconcile)
		cleanGuests(t, h)
		admin := h.admin()
		for _, tc := range []struct {
			name string
			body string
			code string
		}{
			{"unknown field", `{"name":"a","driver":"process","cpus":1,"memory_mb":64,"config":{"command":["/bin/true"]},"gpu":1}`, "invalid_request"},
			{"unknown config field", `{"name":"a","driver":"process","cpus":1,"memory_mb":64,"config":{"command":["/bin/true"],"privileged":true}}`, "invalid_request"},
			{"no command", `{"name":"a","driver":"process","cpus":1,"memory_mb":64,"config":{}}`, "invalid_request"},
			{"relative command", `{"name":"a","driver":"process","cpus":1,"memory_mb":64,"config":{"command":["sleep","1"]}}`, "invalid_request"},
			{"escaping cwd", `{"name":"a","driver":"process","cpus":1,"memory_mb":64,"config":{"command":["/bin/true"],"cwd":"../../etc"}}`, "invalid_request"},
			{"zero cpus", `{"name":"a","driver":"process","cpus":0,"memory_mb":64,"config":{"command":["/bin/true"]}}`, "invalid_request"},
			{"huge memory", `{"name":"a","driver":"process","cpus":1,"memory_mb":99999999999,"config":{"command":["/bin/true"]}}`, "invalid_request"},
			{"string cpus", `{"name":"a","driver":"process","cpus":"one","memory_mb":64,"config":{"command":["/bin/true"]}}`, "invalid_request"},
			{"bad name", `{"name":"Not A Name","driver":"process","cpus":1,"memory_mb":64,"config":{"command":["/bin/true"]}}`, "invalid_request"},
			{"bad driver", `{"name":"a","driver":"xen","cpus":1,"memory_mb":64}`, "invalid_request"},
			{"bad policy", `{"name":"a","driver":"process","cpus":1,"memory_mb":64,"restart_policy":"sometimes","config":{"command":["/bin/true"]}}`, "invalid_request"},
			{"bad label", `{"name":"a","driver":"process","cpus":1,"memory_mb":64,"labels":{"bad key!":"x"},"config":{"command":["/bin/true"]}}`, "invalid_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h.on(t).want(h.on(t).req("POST", "/api/vm/vms", admin, tc.body), 400, tc.code)
			})
		}
		if n := h.want(h.req("GET", "/api/vm/vms", admin, nil), 200).items(); len(n) != 0 {
			t.Fatalf("rejected creates left VMs: %v", n)
		}

		// Process VMs run code on the host: admins only by default.
		t2 := h.mkTenant(admin, "globex")
		_, op2 := h.mkUser(admin, "op2", "operator", t2)
		h.want(h.req("POST", "/api/vm/vms", op2, processVM("mine", "/bin/sleep", "60")), 403, "forbidden")

		// Names are unique per tenant; quotas hold.
		a := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, processVM("a", "/bin/sleep", "60")), 200)
		h.want(h.req("POST", "/api/vm/vms", admin, processVM("a", "/bin/sleep", "60")), 409, "conflict")
		def := h.want(h.req("GET", "/api/tenants", admin, nil), 200)
		var defID string
		for _, ten := range def.items() {
			if ten["name"] == "default" {
				defID = ten["id"].(string)
			}
		}
		h.want(h.req("PUT", "/api/tenants/"+defID, admin, map[string]any{"quotas": map[string]any{"vms": 2, "memory_mb": 128}}), 200)
		h.want(h.req("POST", "/api/vm/vms?wait=1", admin, processVM("b", "/bin/sleep", "60")), 200)
		q := h.want(h.req("POST", "/api/vm/vms", admin, processVM("c", "/bin/sleep", "60")), 409, "quota_exceeded")
		if !strings.Contains(string(q.raw), "vms") {
			t.Errorf("quota error does not name the quota: %s", q.raw)
		}
		h.want(h.req("PUT", "/api/vm/vms/"+a.str("id"), admin, map[string]any{"memory_mb": 128}), 409, "quota_exceeded")

		// Another tenant's VM does not exist for it.
		id := a.str("id")
		for _, p := range []string{"", "/logs"} {
			h.want(h.req("GET", "/api/vm/vms/"+id+p, op2, nil), 404, "not_found")
		}
		h.want(h.req("POST", "/api/vm/vms/"+id+"/start", op2, nil), 404, "not_found")
		h.want(h.req("DELETE", "/api/vm/vms/"+id, op2, nil), 404, "not_found")
		h.want(h.req("PUT", "/api/vm/vms/"+id, op2, map[string]any{"name": "stolen"}), 404, "not_found")
		if l := h.want(h.req("GET", "/api/vm/vms", op2, nil), 200).items(); len(l) != 0 {
			t.Fatalf("op2 sees %v", l)
		}
		if ops := h.want(h.req("GET", "/api/operations", op2, nil), 200).items(); len(ops) != 0 {
			t.Fatalf("op2 sees operations %v", ops)
		}
		h.want(h.req("GET", "/api/vm/vms/not-a-uuid", admin, nil), 404, "not_found")
		h.want(h.req("POST", "/api/vm/vms/not-a-uuid/stop", admin, nil), 404, "not_found")
		h.want(h.req("GET", "/api/operations/nope", admin, nil), 404, "not_found")
		h.want(h.req("GET", "/api/nodes", op2, nil), 200)
		_, u := h.mkUser(admin, "plainuser", "user", t2)
		h.want(h.req("GET", "/api/nodes", u, nil), 403)
		h.want(h.req("POST", "/api/vm/vms/"+id+"/stop", admin, `{"timeout_s":-1}`), 400, "invalid_request")

		// Filters.
		if l := h.want(h.req("GET", "/api/vm/vms?name=b", admin, nil), 200).items(); len(l) != 1 || l[0]["name"] != "b" {
			t.Fatalf("name filter: %v", l)
		}
		if l := h.want(h.req("GET", "/api/vm/vms?state=paused", admin, nil), 200).items(); len(l) != 0 {
			t.Fatalf("state filter: %v", l)
		}
	})
}

func TestVMExitCodesAndRestartPolicy(t *testing.T) {
	requireGuests(t)
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), fastReconcile)
		cleanGuests(t, h)
		admin := h.admin()
		mk := func(name, policy, script string) string {
			body := processVM(name, "/bin/sh", "-c", script)
			body["start"], body["restart_policy"] = true, policy
			return h.want(h.req("POST", "/api/vm/vms?wait=1", admin, body), 200).str("id")
		}
		failing := mk("failing", "never", "sleep 0.3; exit 3")
		clean := mk("clean", "never", "sleep 0.3; exit 0")
		// Crashes the first time, then runs: on-failure starts it again.
		flaky := mk("flaky", "on-failure", "if [ -e crashed ]; then exec sleep 3600; fi; touch crashed; sleep 0.3; exit 1")
		// Crashes every time: the policy gives up.
		looping := mk("looping", "always", "exit 1")

		wantState := func(id, state string, exit any) {
			eventually(t, "vm "+id+" "+state, func() error {
				r := h.req("GET", "/api/vm/vms/"+id, admin, nil)
				if r.str("state") != state || (exit != nil && r.body["exit_code"] != exit) {
					return fmt.Errorf("%s", r.raw)
				}
				return nil
			})
		}
		wantState(failing, "failed", 3.0)
		if r := h.req("GET", "/api/vm/vms/"+failing, admin, nil); !strings.Contains(r.str("state_reason"), "3") {
			t.Errorf("state_reason %q", r.str("state_reason"))
		}
		wantState(clean, "stopped", 0.0)
		wantState(flaky, "running", nil)
		wantState(looping, "failed", nil)
		eventually(t, "crash loop given up", func() error {
			r := h.req("GET", "/api/vm/vms/"+looping, admin, nil)
			if !strings.Contains(r.str("state_reason"), "not restarted") {
				return fmt.Errorf("%s", r.raw)
			}
			return nil
		})
		// A start that cannot exec fails with the reason.
		bad := processVM("bad", "/nonexistent/binary")
		bad["start"] = true
		r := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, bad), 500, "operation_failed")
		if !strings.Contains(string(r.raw), "/nonexistent/binary") {
			t.Errorf("failed start does not say why: %s", r.raw)
		}
		l := h.want(h.req("GET", "/api/vm/vms?name=bad", admin, nil), 200).items()
		if len(l) != 1 || l[0]["state"] != "failed" || l[0]["state_reason"] == "" {
			t.Fatalf("bad VM: %v", l)
		}
	})
}

func TestVMsSurviveAControlPlaneRestart(t *testing.T) {
	requireGuests(t)
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		url := db(t)
		dir := shortTempDir(t)
		cfg := func(c *server.Config) { fastReconcile(c); c.DataDir = dir }
		ctx := context.Background()
		h := start(t, url, cfg)
		admin := h.admin()
		mk := func(name, policy, script string) string {
			body := processVM(name, "/bin/sh", "-c", script)
			body["start"], body["restart_policy"] = true, policy
			return h.want(h.req("POST", "/api/vm/vms?wait=1", admin, body), 200).str("id")
		}
		steady := mk("steady", "never", "exec sleep 3600")
		exits := mk("exits", "never", "sleep 1.5; exit 7")
		crashes := mk("crashes", "on-failure", "if [ -e crashed ]; then exec sleep 3600; fi; sleep 1.5; touch crashed; exit 1")
		paused := mk("paused", "never", "exec sleep 3600")
		h.want(h.req("POST", "/api/vm/vms/"+paused+"/pause", admin, nil), 202)
		pid := pidOf(t, h, steady)
		pausedPID := pidOf(t, h, paused)
		// An orphan: a guest the node runs that the database does not know.
		orphan := uuid.NewString()
		ag := h.srv.Agent()
		spec := nodeclient.GuestSpec{Driver: "process", Spec: driver.Spec{ID: orphan, Name: "orphan", CPUs: 1, MemoryMB: 32,
			Config: json.RawMessage(`{"command":["/bin/sleep","3600"]}`)}}
		if err := ag.CreateGuest(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if err := ag.StartGuest(ctx, orphan); err != nil {
			t.Fatal(err)
		}
		orphanPID := pidOf(t, h, orphan)

		// The control plane goes away; its guests do not.
		closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := h.srv.Close(closeCtx); err != nil {
			t.Fatal(err)
		}
		cancel()
		time.Sleep(2 * time.Second) // "exits" and "crashes" end meanwhile
		if !alive(pid) || !alive(orphanPID) {
			t.Fatal("guests died with the control plane")
		}

		h2 := start(t, url, cfg)
		cleanGuests(t, h2)
		admin = h2.login("admin", adminPassword)
		get := func(id string) reply { return h2.want(h2.req("GET", "/api/vm/vms/"+id, admin, nil), 200) }
		if r := get(steady); r.str("state") != "running" || pidOf(t, h2, steady) != pid {
			t.Fatalf("steady VM after restart: %s (pid %d, was %d)", r.raw, pidOf(t, h2, steady), pid)
		}
		if r := get(paused); r.str("state") != "paused" || pidOf(t, h2, paused) != pausedPID {
			t.Fatalf("paused VM after restart: %s", r.raw)
		}
		eventually(t, "exit code recorded", func() error {
			if r := get(exits); r.str("state") != "failed" || r.body["exit_code"] != 7.0 {
				return errors.New(string(r.raw))
			}
			return nil
		})
		eventually(t, "on-failure restarted", func() error {
			if r := get(crashes); r.str("state") != "running" {
				return errors.New(string(r.raw))
			}
			return nil
		})
		// The adopted guests are still controlled: stop one.
		h2.want(h2.req("POST", "/api/vm/vms/"+steady+"/stop?wait=1", admin, nil), 200)
		if alive(pid) {
			t.Fatal("adopted guest survived its stop")
		}
		// The orphan is reported, never killed.
		eventually(t, "orphan reported", func() error {
			if !strings.Contains(h2.log.String(), orphan) {
				return errors.New("no log line names the orphan")
			}
			return nil
		})
		if !alive(orphanPID) {
			t.Fatal("the orphan guest was killed")
		}
	})
}
