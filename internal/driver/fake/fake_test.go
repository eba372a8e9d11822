package fake_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/drivertest"
	"github.com/novacron/novacron/internal/driver/fake"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(*testing.T) driver.Driver { return fake.New("") }, drivertest.Config{
		Run:         json.RawMessage(`{}`),
		Exit3:       json.RawMessage(`{"exit_after_ms": 50, "exit_code": 3}`),
		IgnoreStop:  json.RawMessage(`{"ignore_stop": true, "output": "ready\n"}`),
		ReadyLine:   "ready",
		Output:      json.RawMessage(`{"output": "line 1\nline 2\nline 3\n"}`),
		OutputLines: []string{"line 1", "line 2", "line 3"},
		UID:         201000, GID: 201000,
	})
}

func newGuest(t *testing.T, d *fake.Driver, config string) driver.Spec {
	t.Helper()
	spec := driver.Spec{ID: uuid.NewString(), Config: json.RawMessage(config), UID: 1, GID: 1}
	if err := d.Create(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestHooks(t *testing.T) {
	ctx := context.Background()
	d := fake.New("qemu")
	if d.Name() != "qemu" {
		t.Fatalf("Name = %q", d.Name())
	}
	spec := newGuest(t, d, `{}`)

	boom := errors.New("boom")
	d.FailNext(fake.MethodStart, boom)
	if err := d.Start(ctx, spec); !errors.Is(err, boom) {
		t.Fatalf("Start = %v, want the queued failure", err)
	}
	if st, _ := d.Status(ctx, spec.ID); st.State != driver.GuestCreated {
		t.Fatalf("a failed Start left the guest %s", st.State)
	}
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start after the failure: %v", err)
	}
	d.FailNext(fake.MethodStop, boom)
	if err := d.Stop(ctx, spec.ID, time.Second, false); !errors.Is(err, boom) {
		t.Fatalf("Stop = %v, want the queued failure", err)
	}
	if st, _ := d.Status(ctx, spec.ID); st.State != driver.GuestRunning {
		t.Fatalf("a failed Stop left the guest %s", st.State)
	}

	if err := d.Exit(spec.ID, 42); err != nil {
		t.Fatal(err)
	}
	st, _ := d.Status(ctx, spec.ID)
	if st.State != driver.GuestExited || *st.ExitCode != 42 || st.Reason != "exited with code 42" {
		t.Fatalf("after Exit: %+v", st)
	}
	if err := d.Exit(spec.ID, 1); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Fatalf("Exit of an exited guest = %v", err)
	}
	if err := d.Exit(uuid.NewString(), 1); !novacron.IsCode(err, novacron.ENotFound) {
		t.Fatalf("Exit of an unknown guest = %v", err)
	}
	if n := d.Calls(fake.MethodStart); n != 2 {
		t.Fatalf("Calls(Start) = %d, want 2", n)
	}
}

func TestDelay(t *testing.T) {
	d := fake.New("")
	spec := newGuest(t, d, `{}`)
	d.SetDelay(fake.MethodStart, 100*time.Millisecond)
	t0 := time.Now()
	if err := d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el < 100*time.Millisecond {
		t.Fatalf("Start took %s, want the delay", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	d.SetDelay(fake.MethodStop, time.Hour)
	if err := d.Stop(ctx, spec.ID, 0, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed Stop with a short context = %v", err)
	}
	d.SetDelay(fake.MethodStop, 0)
	if err := d.Stop(context.Background(), spec.ID, 0, true); err != nil {
		t.Fatal(err)
	}
}

// A guest due to exit while paused exits once resumed, as a frozen process
// would.
func TestExitWhilePaused(t *testing.T) {
	ctx := context.Background()
	d := fake.New("")
	spec := newGuest(t, d, `{"exit_after_ms": 30, "exit_code": 5}`)
	if err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if st, _ := d.Status(ctx, spec.ID); st.State != driver.GuestPaused {
		t.Fatalf("paused guest became %s", st.State)
	}
	if err := d.Resume(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Status(ctx, spec.ID); st.State != driver.GuestExited || *st.ExitCode != 5 {
		t.Fatalf("after Resume: %+v", st)
	}
}

func TestValidateConfig(t *testing.T) {
	d := fake.New("")
	for _, tc := range []struct {
		config, field string
	}{
		{`{}`, ""},
		{``, ""},
		{`null`, ""},
		{`{"exit_after_ms": 10, "exit_code": 1, "ignore_stop": false, "output": "x"}`, ""},
		{`{"nope": 1}`, "config.nope"},
		{`{"exit_code": "3"}`, "config.exit_code"},
		{`{"exit_code": 300}`, "config.exit_code"},
		{`{"exit_after_ms": -1}`, "config.exit_after_ms"},
		{`[]`, "config"},
	} {
		err := d.ValidateConfig(json.RawMessage(tc.config))
		if tc.field == "" {
			if err != nil {
				t.Errorf("ValidateConfig(%s) = %v", tc.config, err)
			}
			continue
		}
		var e *novacron.Error
		if !errors.As(err, &e) || e.Code != novacron.EInvalid || e.Details["field"] != tc.field {
			t.Errorf("ValidateConfig(%s) = %v, want invalid %s", tc.config, err, tc.field)
		}
	}
}

// A graceful stop of a guest that ignores it kills it after the timeout,
// even when the caller gave up waiting.
func TestStopTimeoutOutlivesCaller(t *testing.T) {
	d := fake.New("")
	spec := newGuest(t, d, `{"ignore_stop": true}`)
	if err := d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := d.Stop(ctx, spec.ID, 100*time.Millisecond, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the caller's deadline", err)
	}
	if st, _ := d.Status(context.Background(), spec.ID); st.State != driver.GuestRunning {
		t.Fatalf("before the timeout: %s", st.State)
	}
	time.Sleep(200 * time.Millisecond)
	if st, _ := d.Status(context.Background(), spec.ID); st.State != driver.GuestExited || *st.ExitCode != 137 {
		t.Fatalf("after the timeout: %+v", st)
	}
}
