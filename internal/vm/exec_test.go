package vm_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/vm"
)

// TestExec: who may run commands in a VM, in which states, and what comes
// back, over the fake driver.
func TestExec(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	v := w.create("web", fake.Config{Output: "hello\n"}, func(r *vm.CreateRequest) { r.Start = true })
	if err := w.drv.SetExecExitCode(v.ID, 7); err != nil {
		t.Fatal(err)
	}
	owner := w.admin
	operator := &novacron.Actor{UserID: "op", TenantID: w.tenant.ID, Role: novacron.RoleOperator}
	user := &novacron.Actor{UserID: "u", TenantID: w.tenant.ID, Role: novacron.RoleUser}
	stranger := &novacron.Actor{UserID: "s", TenantID: "another-tenant", Role: novacron.RoleOperator}
	req := vm.ExecRequest{Command: []string{"/bin/echo", "hi"}, Stdin: "in", Env: map[string]string{"A": "1"}}

	for _, actor := range []*novacron.Actor{owner, operator} {
		_, res, err := w.svc.Exec(ctx, actor, v.ID, req)
		if err != nil || res.ExitCode != 7 || res.Stdout != "hi\nin" || res.Stderr != "A=1\n" {
			t.Errorf("Exec as %s: %+v %v", actor.Role, res, err)
		}
	}
	if _, _, err := w.svc.Exec(ctx, user, v.ID, req); !novacron.IsCode(err, novacron.EForbidden) {
		t.Errorf("a user who is not the owner: %v", err)
	}
	if _, _, err := w.svc.Exec(ctx, stranger, v.ID, req); !novacron.IsCode(err, novacron.ENotFound) {
		t.Errorf("an operator of another tenant: %v", err)
	}
	for _, tc := range []struct {
		name  string
		req   vm.ExecRequest
		field string
	}{
		{"no command", vm.ExecRequest{}, "command"},
		{"a relative command", vm.ExecRequest{Command: []string{"echo"}}, "command[0]"},
		{"a timeout too long", vm.ExecRequest{Command: []string{"/bin/true"}, TimeoutS: 3601}, "timeout_s"},
		{"a negative timeout", vm.ExecRequest{Command: []string{"/bin/true"}, TimeoutS: -1}, "timeout_s"},
		{"stdin too long", vm.ExecRequest{Command: []string{"/bin/true"}, Stdin: strings.Repeat("x", vm.MaxExecStdin+1)}, "stdin"},
		{"a bad env", vm.ExecRequest{Command: []string{"/bin/true"}, Env: map[string]string{"1A": "x"}}, "env"},
	} {
		_, _, err := w.svc.Exec(ctx, owner, v.ID, tc.req)
		if !novacron.IsCode(err, novacron.EInvalid) || !strings.Contains(novacron.ErrorMessage(err), tc.field) {
			t.Errorf("%s: %v, want invalid_request naming %s", tc.name, err, tc.field)
		}
	}
	// The timeout: the command is killed, and the answer says so.
	_, res, err := w.svc.Exec(ctx, owner, v.ID, vm.ExecRequest{Command: []string{"/bin/sleep"}, TimeoutS: 1})
	if err != nil || !res.TimedOut || res.ExitCode != 137 {
		t.Errorf("timeout: %+v %v", res, err)
	}

	// Interactive, on a terminal.
	_, s, err := w.svc.ExecInteractive(ctx, owner, v.ID, vm.ExecRequest{Command: []string{"/bin/sh"}, TTY: true, Cols: 90, Rows: 20})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "typed\x04")
	out, _ := io.ReadAll(s)
	if code, err := s.Wait(ctx); string(out) != "typed" || code != 7 || err != nil {
		t.Errorf("interactive: %q, exit %d, %v", out, code, err)
	}
	s.Close()
	if _, _, err := w.svc.ExecInteractive(ctx, user, v.ID, vm.ExecRequest{Command: []string{"/bin/sh"}}); !novacron.IsCode(err, novacron.EForbidden) {
		t.Errorf("interactive, a user who is not the owner: %v", err)
	}
	if _, _, err := w.svc.ExecInteractive(ctx, owner, v.ID, vm.ExecRequest{Command: []string{"/bin/sh"}, TimeoutS: 5}); !novacron.IsCode(err, novacron.EInvalid) {
		t.Errorf("interactive with a timeout: %v", err)
	}

	// Paused, then stopped: invalid_state.
	pv, err := w.svc.Act(ctx, owner, v.ID, novacron.ActionPause, vm.StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.wait(pv.OperationID)
	if _, _, err := w.svc.Exec(ctx, owner, v.ID, req); !novacron.IsCode(err, novacron.EInvalidState) || !strings.Contains(novacron.ErrorMessage(err), "paused") {
		t.Errorf("a paused VM: %v", err)
	}
	sv, err := w.svc.Act(ctx, owner, v.ID, novacron.ActionStop, vm.StopOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	w.wait(sv.OperationID)
	if _, _, err := w.svc.Exec(ctx, owner, v.ID, req); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("a stopped VM: %v", err)
	}
	if _, _, err := w.svc.ExecInteractive(ctx, owner, v.ID, vm.ExecRequest{Command: []string{"/bin/sh"}, TTY: true}); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("interactive, a stopped VM: %v", err)
	}
}

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

// TestFollowLogs: following a VM's output ends when its guest does.
func TestFollowLogs(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	v := w.create("web", fake.Config{Output: "one\ntwo\n"}, func(r *vm.CreateRequest) { r.Start = true })
	follow, err := w.svc.FollowLogs(ctx, w.admin, v.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.FollowLogs(ctx, &novacron.Actor{UserID: "s", TenantID: "x", Role: novacron.RoleUser}, v.ID, 0); !novacron.IsCode(err, novacron.ENotFound) {
		t.Errorf("another tenant: %v", err)
	}
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- follow(ctx, &out) }()
	w.eventually("the tail", func() bool { return out.String() == "two\n" })
	w.drv.Print(v.ID, "three\n")
	w.eventually("the new output", func() bool { return out.String() == "two\nthree\n" })
	sv, err := w.svc.Act(ctx, w.admin, v.ID, novacron.ActionStop, vm.StopOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	w.wait(sv.OperationID)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follow does not end with the guest")
	}
}
