package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// lockedBuffer is a buffer FollowLogs writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFollowLogs: following a guest's output from its start gets every
// line once, in order, across the log's rotations, and ends when the guest
// does.
func TestFollowLogs(t *testing.T) {
	needRoot(t)
	cfg := testConfig(t, t.TempDir())
	cfg.LogMaxBytes, cfg.LogFiles = 4096, 2
	d := newDriver(t, cfg)
	const n = 400
	spec := guest(t, d, driver.Spec{Config: json.RawMessage(fmt.Sprintf(`{"command": ["/bin/sh", "-c",
		"sleep 0.3; i=0; while [ $i -lt %d ]; do echo \"line $i of a followed guest\"; i=$((i+1)); sleep 0.005; done; exit 0"]}`, n))})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out lockedBuffer
	t0 := time.Now()
	if err := d.FollowLogs(ctx, spec.ID, 0, &out); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("FollowLogs did not end with the guest (after %s)", time.Since(t0))
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines followed, want %d: first %q, last %q", len(lines), n, lines[0], lines[len(lines)-1])
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d of a followed guest", i); l != want {
			t.Fatalf("line %d: %q, want %q", i, l, want)
		}
	}
	// A guest that has ended gets its log, and the follow ends at once.
	waitExited(t, d, spec.ID)
	out = lockedBuffer{}
	if err := d.FollowLogs(ctx, spec.ID, 2, &out); err != nil || out.String() != fmt.Sprintf("line %d of a followed guest\nline %d of a followed guest\n", n-2, n-1) {
		t.Errorf("follow an ended guest: %q %v", out.String(), err)
	}
	if err := d.FollowLogs(ctx, "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", 0, &out); !novacron.IsCode(err, novacron.ENotFound) {
		t.Errorf("an unknown guest: %v", err)
	}
}

// TestFollowLogsTail: the last lines, then what comes, until the context
// ends.
func TestFollowLogsTail(t *testing.T) {
	needRoot(t)
	d := newDriver(t, testConfig(t, t.TempDir()))
	spec := guest(t, d, driver.Spec{Config: json.RawMessage(`{"command": ["/bin/sh", "-c",
		"echo a; echo b; echo c; sleep 1; echo d; exec sleep 3600"]}`)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	time.Sleep(300 * time.Millisecond)
	go func() { done <- d.FollowLogs(ctx, spec.ID, 2, &out) }()
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "b\nc\nd\n" {
		if time.Now().After(deadline) {
			t.Fatalf("followed %q, want b c d", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("FollowLogs after the cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FollowLogs does not end with its context")
	}
}
