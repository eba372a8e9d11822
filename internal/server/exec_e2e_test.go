package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialExec opens the exec WebSocket of a VM with query q.
func (h *harness) dialExec(token, id string, q url.Values) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(h.url, "http") + "/api/vm/vms/" + id + "/exec?" + q.Encode()
	return websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
		Subprotocols: []string{"novacron"}})
}

// execUntil reads an exec WebSocket's output until it holds want.
func execUntil(t *testing.T, c *websocket.Conn, out *strings.Builder, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !strings.Contains(out.String(), want) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("no %q in %q: %v", want, out.String(), err)
		}
		if typ == websocket.MessageBinary {
			out.Write(b)
		}
	}
}

// TestExecThroughTheAPI: commands run in a container uploaded and created
// through the API, as its owner, its tenant's operator and an admin (not
// another user of the tenant, nor anyone of another tenant): exit code,
// output, the container's identity, a timeout, a terminal over the
// WebSocket with a resize, a closed WebSocket killing its command, and a
// followed log showing what a command made the container print.
func TestExecThroughTheAPI(t *testing.T) {
	requireRunc(t)
	h := start(t, "", fastReconcile)
	cleanGuests(t, h)
	admin := h.admin()
	acme := h.mkTenant(admin, "acme")
	other := h.mkTenant(admin, "other")
	_, alice := h.mkUser(admin, "alice", "user", acme)
	_, bob := h.mkUser(admin, "bob", "user", acme)
	_, oscar := h.mkUser(admin, "oscar", "operator", acme)
	_, eve := h.mkUser(admin, "eve", "operator", other)

	img := h.want(h.upload(alice, "busybox", "rootfs", busyboxTar(t)), 201).str("id")
	// The container prints what a command leaves in /dev/shm/say. (Not in
	// /tmp: runc gives the tmpfs on /tmp the mode of the image's tmp/,
	// here 0755 and root's.)
	main := `echo started; trap "exit 0" TERM; while :; do if [ -f /dev/shm/say ]; then cat /dev/shm/say; busybox rm /dev/shm/say; fi; sleep 0.1; done`
	v := h.want(h.req("POST", "/api/vm/vms?wait=1", alice, map[string]any{"name": "app", "driver": "container", "image_id": img,
		"cpus": 1, "memory_mb": 64, "start": true,
		"config": map[string]any{"command": []string{"/bin/sh", "-c", main}, "env": map[string]string{"GREETING": "hello"}, "cwd": "/tmp"}}), 200)
	id := v.str("id")
	pid := pidOf(t, h, id)
	uid := strings.Fields(procField(pid, "Uid"))[0]

	exec := func(token string, body map[string]any) reply {
		t.Helper()
		return h.req("POST", "/api/vm/vms/"+id+"/exec", token, body)
	}
	r := h.want(exec(alice, map[string]any{"command": []string{"/bin/sh", "-c", "echo out $GREETING $EXTRA; id -u; pwd; echo err >&2; exit 3"},
		"env": map[string]string{"EXTRA": "extra"}}), 200)
	if r.body["exit_code"] != 3.0 || r.str("stdout") != "out hello extra\n"+uid+"\n/tmp\n" || r.str("stderr") != "err\n" || r.body["timed_out"] != false {
		t.Errorf("the owner's command: %s (uid %s)", r.raw, uid)
	}
	for _, tok := range []string{oscar, admin} {
		if r := h.want(exec(tok, map[string]any{"command": []string{"/bin/sh", "-c", "cat", "-"}, "stdin": "in\n", "cwd": "/"}), 200); r.str("stdout") != "in\n" || r.body["exit_code"] != 0.0 {
			t.Errorf("stdin: %s", r.raw)
		}
	}
	h.want(exec(bob, map[string]any{"command": []string{"/bin/sh", "-c", "id"}}), 403, "forbidden")
	h.want(exec(eve, map[string]any{"command": []string{"/bin/sh", "-c", "id"}}), 404, "not_found")
	if r := h.want(exec(alice, map[string]any{"command": []string{"/nope"}}), 400, "invalid_request"); !strings.Contains(string(r.raw), "/nope") {
		t.Errorf("a missing command: %s", r.raw)
	}
	t0 := time.Now()
	if r := h.want(exec(alice, map[string]any{"command": []string{"/bin/sleep", "30"}, "timeout_s": 1}), 200); r.body["timed_out"] != true || r.body["exit_code"] != 137.0 {
		t.Errorf("timeout: %s", r.raw)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("a command with a timeout of 1s took %s", d)
	}

	// A terminal over the WebSocket.
	c, resp, err := h.dialExec(alice, id, url.Values{"command": {"/bin/sh"}, "tty": {"1"}, "cols": {"80"}, "rows": {"24"}})
	if err != nil {
		t.Fatalf("exec WebSocket: %v %v", resp, err)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out strings.Builder
	c.Write(ctx, websocket.MessageBinary, []byte("busybox tty; busybox stty size; echo ready$((1+1))\n"))
	execUntil(t, c, &out, "ready2")
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "24 80") {
		t.Errorf("the terminal: %q", out.String())
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","cols":120,"rows":40}`))
	out.Reset()
	c.Write(ctx, websocket.MessageBinary, []byte("busybox stty size; echo resized$((2+2))\n"))
	execUntil(t, c, &out, "resized4")
	if !strings.Contains(out.String(), "40 120") {
		t.Errorf("after the resize: %q", out.String())
	}
	c.Write(ctx, websocket.MessageBinary, []byte("exit 4\n"))
	exit := -1
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure {
				t.Errorf("the close: %v", err)
			}
			break
		}
		if typ == websocket.MessageText {
			var m struct {
				Type     string `json:"type"`
				ExitCode int    `json:"exit_code"`
			}
			if json.Unmarshal(b, &m) == nil && m.Type == "exit" {
				exit = m.ExitCode
			}
		}
	}
	if exit != 4 {
		t.Errorf("exit code %d, want 4", exit)
	}

	// Closing the WebSocket kills its command and what it started.
	procs := func() int { return len(strings.Fields(cgroupFile(t, pid, "pids", "cgroup.procs", "cgroup.procs"))) }
	before := procs()
	c, _, err = h.dialExec(oscar, id, url.Values{"command": {"/bin/sh", "-c", "sleep 1000 & sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the command runs", func() error {
		if n := procs(); n < before+2 {
			return fmt.Errorf("%d processes", n)
		}
		return nil
	})
	c.Close(websocket.StatusNormalClosure, "")
	eventually(t, "the command is killed", func() error {
		if n := procs(); n != before {
			return fmt.Errorf("%d processes, want %d", n, before)
		}
		return nil
	})
	for _, u := range []struct {
		tok    string
		status int
	}{{bob, 403}, {eve, 404}} {
		if _, resp, err := h.dialExec(u.tok, id, url.Values{"command": {"/bin/sh"}}); err == nil || resp == nil || resp.StatusCode != u.status {
			t.Errorf("the WebSocket: %v %v, want %d", resp, err, u.status)
		}
	}

	// The followed log shows what the container prints, here at a
	// command's bidding, and ends when the container does.
	req, _ := http.NewRequest("GET", h.url+"/api/vm/vms/"+id+"/logs?follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	fresp, err := http.DefaultClient.Do(req)
	if err != nil || fresp.StatusCode != 200 {
		t.Fatalf("follow: %v %v", fresp, err)
	}
	defer fresp.Body.Close()
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		rd := bufio.NewReader(fresp.Body)
		for {
			l, err := rd.ReadString('\n')
			if l != "" {
				lines <- l
			}
			if err != nil {
				return
			}
		}
	}()
	line := func(want string) {
		t.Helper()
		select {
		case l := <-lines:
			if l != want {
				t.Fatalf("the followed log: %q, want %q", l, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("the followed log has no %q (the log: %q)", want, h.req("GET", "/api/vm/vms/"+id+"/logs", alice, nil).raw)
		}
	}
	line("started\n")
	r = h.want(exec(alice, map[string]any{"command": []string{"/bin/sh", "-c", "echo said-by-exec > /dev/shm/say"}}), 200)
	if r.body["exit_code"] != 0.0 {
		t.Errorf("the command that speaks: %s", r.raw)
	}
	line("said-by-exec\n")

	// Paused or stopped: no command.
	h.want(h.req("POST", "/api/vm/vms/"+id+"/pause?wait=1", alice, nil), 200)
	h.want(exec(alice, map[string]any{"command": []string{"/bin/sh", "-c", "id"}}), 409, "invalid_state")
	h.want(h.req("POST", "/api/vm/vms/"+id+"/resume?wait=1", alice, nil), 200)
	h.want(h.req("POST", "/api/vm/vms/"+id+"/stop?wait=1", alice, map[string]any{"timeout_s": 5}), 200)
	for ended := false; !ended; {
		select {
		case _, open := <-lines:
			ended = !open
		case <-time.After(10 * time.Second):
			t.Fatal("the followed log did not end with the container")
		}
	}
	h.want(exec(alice, map[string]any{"command": []string{"/bin/sh", "-c", "id"}}), 409, "invalid_state")

	// Audited, allowed or not.
	es := h.want(h.req("GET", "/api/audit?action=vm.exec&limit=100", admin, nil), 200).items()
	var ok, denied int
	for _, e := range es {
		if e["success"] == true {
			ok++
		} else if e["username"] == "bob" {
			denied++
		}
	}
	if ok != 5 || denied != 1 {
		t.Errorf("vm.exec audit: %d allowed (want 5), %d denied to bob (want 1) of %d", ok, denied, len(es))
	}
	if n := len(h.want(h.req("GET", "/api/audit?action=vm.exec_interactive&limit=100", admin, nil), 200).items()); n != 4 {
		t.Errorf("%d vm.exec_interactive audit entries, want 4", n)
	}

	h.want(h.req("DELETE", "/api/vm/vms/"+id+"?wait=1", alice, nil), 204)
	h.want(h.req("DELETE", "/api/images/"+img, alice, nil), 204)
}
