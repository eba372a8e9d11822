package fake_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/fake"
)

func TestExec(t *testing.T) {
	ctx := context.Background()
	d := fake.New("")
	spec := newGuest(t, d, `{}`)
	if _, err := d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/echo"}}); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("Exec in a created guest: %v", err)
	}
	if err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.SetExecExitCode(spec.ID, 3); err != nil {
		t.Fatal(err)
	}
	res, err := d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/echo", "a", "b"}, Stdin: []byte("in"),
		Env: map[string]string{"B": "2", "A": "1"}, Cwd: "/srv"})
	if err != nil || res.ExitCode != 3 || string(res.Stdout) != "a b\nin" || string(res.Stderr) != "A=1\nB=2\n/srv" {
		t.Errorf("Exec = %+v (%q, %q), %v", res, res.Stdout, res.Stderr, err)
	}
	res, err = d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/echo", "abcdef"}, MaxOutput: 3})
	if err != nil || string(res.Stdout) != "abc" || !res.StdoutTruncated {
		t.Errorf("bounded: %+v %v", res, err)
	}
	res, err = d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sleep"}, Timeout: 10 * time.Millisecond})
	if err != nil || !res.TimedOut || res.ExitCode != 137 {
		t.Errorf("timeout: %+v %v", res, err)
	}
	if _, err := d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"echo"}}); !novacron.IsCode(err, novacron.EInvalid) {
		t.Errorf("a relative command: %v", err)
	}

	s, err := d.ExecInteractive(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sh"}, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "hello")
	s.Resize(100, 40)
	io.WriteString(s, "\x04")
	out, _ := io.ReadAll(s)
	if string(out) != "helloresized to 100x40\r\n" {
		t.Errorf("session output %q", out)
	}
	if code, err := s.Wait(ctx); code != 3 || err != nil {
		t.Errorf("Wait = %d, %v", code, err)
	}
	s.Close()

	s, err = d.ExecInteractive(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/sh"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, spec.ID, driver.ExecRequest{Command: []string{"/bin/echo"}}); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("Exec in a paused guest: %v", err)
	}
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	if code, err := s.Wait(ctx); code != 137 || err != nil {
		t.Errorf("a session of a stopped guest: %d, %v", code, err)
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

func TestFollowLogs(t *testing.T) {
	ctx := context.Background()
	d := fake.New("")
	spec := newGuest(t, d, `{"output": "a\nb\n"}`)
	if err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- d.FollowLogs(ctx, spec.ID, 1, &out) }()
	time.Sleep(30 * time.Millisecond)
	d.Print(spec.ID, "c\n")
	time.Sleep(30 * time.Millisecond)
	if err := d.Stop(ctx, spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || out.String() != "b\nc\n" {
			t.Errorf("FollowLogs = %q, %v", out.String(), err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FollowLogs does not end with the guest")
	}
}
