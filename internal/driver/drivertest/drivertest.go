// Package drivertest is the conformance suite of the driver contract
// (package driver): one Run, exercised against every driver, so the logic
// above drivers can rely on the same behaviour from the fake and the real
// ones.
package drivertest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// Config tells the suite how to make the driver's guests behave. Each
// field is a driver config ValidateConfig accepts.
type Config struct {
	// Run is a guest that runs until stopped and ends on a graceful stop.
	Run json.RawMessage
	// Exit3 is a guest that exits by itself with code 3, within seconds;
	// nil when the driver's guests cannot choose their exit code (the
	// suite skips that test).
	Exit3 json.RawMessage
	// IgnoreStop is a guest that ignores a graceful stop, printing
	// ReadyLine once it does (for a LogReader; without one the suite
	// waits a moment instead).
	IgnoreStop json.RawMessage
	ReadyLine  string
	// Output is a guest that prints OutputLines (each followed by a
	// newline) and then runs until stopped.
	Output      json.RawMessage
	OutputLines []string
	// UID and GID are the ids guests run as (non-zero).
	UID, GID int
	// CPUs and MemoryMB are the guests' resources (defaults 1 and 256).
	CPUs, MemoryMB int
	// RunReadyLine, when set, is a line the Run guest prints once it
	// handles a graceful stop (a booted OS); where a stop's duration is
	// checked, the suite waits for it first.
	RunReadyLine string
	// KilledExitCode and KilledReason are what a guest reports after a
	// forced stop or a stop past its timeout (defaults 137 and "killed by
	// signal 9").
	KilledExitCode int
	KilledReason   string
	// Prepare, when set, completes each guest's spec (boot files, disk).
	Prepare func(spec *driver.Spec)
	// OutputTimeout bounds the wait for a guest's output (default 10 s;
	// more for guests that boot an OS).
	OutputTimeout time.Duration
}

// Run runs the suite. newDriver returns a fresh driver for each subtest.
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver, cfg Config) {
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 256
	}
	if cfg.KilledExitCode == 0 {
		cfg.KilledExitCode = 137
	}
	if cfg.OutputTimeout == 0 {
		cfg.OutputTimeout = 10 * time.Second
	}
	if cfg.KilledReason == "" {
		cfg.KilledReason = "killed by signal 9"
	}
	s := &suite{cfg: cfg, newDriver: newDriver}
	t.Run("ValidateConfig", s.validateConfig)
	t.Run("Lifecycle", s.lifecycle)
	t.Run("PauseResume", s.pauseResume)
	t.Run("StopPaused", s.stopPaused)
	t.Run("ExitByItself", s.exitByItself)
	t.Run("StopTimeoutKills", s.stopTimeout)
	t.Run("ForceStop", s.forceStop)
	t.Run("Logs", s.logs)
	t.Run("UnknownGuest", s.unknownGuest)
	t.Run("TwoGuests", s.twoGuests)
}

type suite struct {
	cfg       Config
	newDriver func(t *testing.T) driver.Driver
}

// Spec returns a spec of a new guest with config and cfg's ids and
// resources.
func (s *suite) spec(config json.RawMessage) driver.Spec {
	id := uuid.NewString()
	spec := driver.Spec{ID: id, Name: "t-" + id[:8], CPUs: s.cfg.CPUs, MemoryMB: s.cfg.MemoryMB,
		Config: config, UID: s.cfg.UID, GID: s.cfg.GID}
	if s.cfg.Prepare != nil {
		s.cfg.Prepare(&spec)
	}
	return spec
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// create creates a guest and removes it when the test ends.
func (s *suite) create(t *testing.T, ctx context.Context, d driver.Driver, config json.RawMessage) driver.Spec {
	t.Helper()
	spec := s.spec(config)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Stop(ctx, spec.ID, 0, true); err != nil && !novacron.IsCode(err, novacron.ENotFound) {
			t.Errorf("cleanup: Stop: %v", err)
		}
		if err := d.Delete(ctx, spec.ID); err != nil {
			t.Errorf("cleanup: Delete: %v", err)
		}
	})
	return spec
}

func (s *suite) start(t *testing.T, ctx context.Context, d driver.Driver, config json.RawMessage) driver.Spec {
	t.Helper()
	spec := s.create(t, ctx, d, config)
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return spec
}

func status(t *testing.T, ctx context.Context, d driver.Driver, id string) driver.Status {
	t.Helper()
	st, err := d.Status(ctx, id)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func wantState(t *testing.T, ctx context.Context, d driver.Driver, id string, want driver.GuestState) driver.Status {
	t.Helper()
	st := status(t, ctx, d, id)
	if st.State != want {
		t.Fatalf("Status = %+v, want state %s", st, want)
	}
	return st
}

func wantRunning(t *testing.T, ctx context.Context, d driver.Driver, id string) driver.Status {
	t.Helper()
	st := wantState(t, ctx, d, id, driver.GuestRunning)
	if st.PID <= 0 || st.StartedAt.IsZero() || st.ExitCode != nil {
		t.Fatalf("running Status = %+v, want a pid, a start time and no exit code", st)
	}
	return st
}

func wantExited(t *testing.T, ctx context.Context, d driver.Driver, id string) driver.Status {
	t.Helper()
	st := wantState(t, ctx, d, id, driver.GuestExited)
	if st.ExitCode == nil || st.Reason == "" {
		t.Fatalf("exited Status = %+v, want an exit code and a reason", st)
	}
	if st.ExitedAt.IsZero() || st.ExitedAt.Before(st.StartedAt) {
		t.Fatalf("exited Status = %+v, want exited_at after started_at", st)
	}
	return st
}

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if !novacron.IsCode(err, code) {
		t.Fatalf("%s: error %v, want code %s", what, err, code)
	}
}

// waitExited polls until the guest has exited.
func waitExited(t *testing.T, ctx context.Context, d driver.Driver, id string, within time.Duration) driver.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := status(t, ctx, d, id)
		if st.State == driver.GuestExited {
			return wantExited(t, ctx, d, id)
		}
		if time.Now().After(deadline) {
			t.Fatalf("guest still %s after %s", st.State, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutput polls the guest's logs until they hold want.
func (s *suite) waitOutput(t *testing.T, ctx context.Context, lr driver.LogReader, id, want string) []byte {
	t.Helper()
	deadline := time.Now().Add(s.cfg.OutputTimeout)
	for {
		b, err := lr.Logs(ctx, id, 0)
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if bytes.Contains(b, []byte(want)) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs %q do not show %q", b, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *suite) validateConfig(t *testing.T) {
	d := s.newDriver(t)
	for name, c := range map[string]json.RawMessage{"Run": s.cfg.Run, "Exit3": s.cfg.Exit3,
		"IgnoreStop": s.cfg.IgnoreStop, "Output": s.cfg.Output} {
		if c == nil && name == "Exit3" {
			continue
		}
		if err := d.ValidateConfig(c); err != nil {
			t.Errorf("ValidateConfig(%s %s): %v", name, c, err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(s.cfg.Run, &m); err != nil {
		t.Fatalf("Run config is not an object: %v", err)
	}
	m["bogus_field"] = 1
	unknown, _ := json.Marshal(m)
	err := d.ValidateConfig(unknown)
	wantCode(t, err, novacron.EInvalid, "ValidateConfig with an unknown field")
	if !strings.Contains(novacron.ErrorMessage(err), "config.bogus_field") {
		t.Errorf("unknown field error %q does not name config.bogus_field", novacron.ErrorMessage(err))
	}
	for _, bad := range []string{`[1, 2]`, `"x"`, `{"`} {
		wantCode(t, d.ValidateConfig(json.RawMessage(bad)), novacron.EInvalid, "ValidateConfig("+bad+")")
	}
	ctx := testContext(t)
	spec := s.spec(unknown)
	wantCode(t, d.Create(ctx, spec), novacron.EInvalid, "Create with an unknown config field")
}

func (s *suite) lifecycle(t *testing.T) {
	d := s.newDriver(t)
	ctx := testContext(t)
	spec := s.create(t, ctx, d, s.cfg.Run)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create again (idempotent): %v", err)
	}
	wantState(t, ctx, d, spec.ID, driver.GuestCreated)
	ids, err := d.List(ctx)
	if err != nil || !contains(ids, spec.ID) {
		t.Fatalf("List = %v, %v; want it to hold %s", ids, err, spec.ID)
	}
	if err := d.Stop(ctx, spec.ID, time.Second, false); err != nil {
		t.Fatalf("Stop of a created guest: %v", err)
	}
	if p, ok := d.(driver.Pauser); ok {
		wantCode(t, p.Pause(ctx, spec.ID), novacron.EInvalidState, "Pause of a created guest")
	}

	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	first := wantRunning(t, ctx, d, spec.ID)
	wantCode(t, d.Start(ctx, spec), novacron.EInvalidState, "Start of a running guest")
	wantCode(t, d.Delete(ctx, spec.ID), novacron.EInvalidState, "Delete of a running guest")
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create of a running guest with its spec: %v", err)
	}
	wantRunning(t, ctx, d, spec.ID)

	if err := d.Stop(ctx, spec.ID, 10*time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st := wantExited(t, ctx, d, spec.ID)
	if st.PID != 0 {
		t.Errorf("exited guest reports pid %d", st.PID)
	}
	if !st.StartedAt.Equal(first.StartedAt) {
		t.Errorf("exited StartedAt %v, want the run's %v", st.StartedAt, first.StartedAt)
	}
	if err := d.Stop(ctx, spec.ID, time.Second, false); err != nil {
		t.Fatalf("Stop of an exited guest: %v", err)
	}
	if p, ok := d.(driver.Pauser); ok {
		wantCode(t, p.Pause(ctx, spec.ID), novacron.EInvalidState, "Pause of an exited guest")
		wantCode(t, p.Resume(ctx, spec.ID), novacron.EInvalidState, "Resume of an exited guest")
	}

	// An exited guest starts again.
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	again := wantRunning(t, ctx, d, spec.ID)
	if again.StartedAt.Before(st.ExitedAt) {
		t.Errorf("second run started at %v, before the first ended (%v)", again.StartedAt, st.ExitedAt)
	}
	if err := d.Stop(ctx, spec.ID, 10*time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantExited(t, ctx, d, spec.ID)

	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = d.Status(ctx, spec.ID)
	wantCode(t, err, novacron.ENotFound, "Status after Delete")
	ids, err = d.List(ctx)
	if err != nil || contains(ids, spec.ID) {
		t.Fatalf("List after Delete = %v, %v", ids, err)
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
}

func (s *suite) pauseResume(t *testing.T) {
	d := s.newDriver(t)
	p, ok := d.(driver.Pauser)
	if !ok {
		if d.Capabilities().Pause {
			t.Fatal("Capabilities says Pause, but the driver is no Pauser")
		}
		t.Skip("the driver cannot pause")
	}
	if !d.Capabilities().Pause {
		t.Error("the driver is a Pauser, but Capabilities does not say Pause")
	}
	ctx := testContext(t)
	spec := s.start(t, ctx, d, s.cfg.Run)
	running := wantRunning(t, ctx, d, spec.ID)
	wantCode(t, p.Resume(ctx, spec.ID), novacron.EInvalidState, "Resume of a running guest")
	if err := p.Pause(ctx, spec.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	st := wantState(t, ctx, d, spec.ID, driver.GuestPaused)
	if st.PID != running.PID {
		t.Errorf("paused guest's pid %d, want %d", st.PID, running.PID)
	}
	wantCode(t, p.Pause(ctx, spec.ID), novacron.EInvalidState, "Pause of a paused guest")
	wantCode(t, d.Start(ctx, spec), novacron.EInvalidState, "Start of a paused guest")
	wantCode(t, d.Delete(ctx, spec.ID), novacron.EInvalidState, "Delete of a paused guest")
	if err := p.Resume(ctx, spec.ID); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if st := wantRunning(t, ctx, d, spec.ID); st.PID != running.PID {
		t.Errorf("resumed guest's pid %d, want %d", st.PID, running.PID)
	}
	if err := d.Stop(ctx, spec.ID, 10*time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantExited(t, ctx, d, spec.ID)
}

func (s *suite) stopPaused(t *testing.T) {
	d := s.newDriver(t)
	p, ok := d.(driver.Pauser)
	if !ok {
		t.Skip("the driver cannot pause")
	}
	ctx := testContext(t)
	spec := s.start(t, ctx, d, s.cfg.Run)
	if lr, ok := d.(driver.LogReader); ok && s.cfg.RunReadyLine != "" {
		s.waitOutput(t, ctx, lr, spec.ID, s.cfg.RunReadyLine)
	}
	if err := p.Pause(ctx, spec.ID); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	t0 := time.Now()
	if err := d.Stop(ctx, spec.ID, 10*time.Second, false); err != nil {
		t.Fatalf("Stop of a paused guest: %v", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("graceful Stop of a paused guest took %s: it waited for the kill", el)
	}
	wantExited(t, ctx, d, spec.ID)
}

func (s *suite) exitByItself(t *testing.T) {
	if s.cfg.Exit3 == nil {
		t.Skip("the driver's guests cannot choose their exit code")
	}
	d := s.newDriver(t)
	ctx := testContext(t)
	spec := s.start(t, ctx, d, s.cfg.Exit3)
	st := waitExited(t, ctx, d, spec.ID, 10*time.Second)
	if *st.ExitCode != 3 || st.Reason != "exited with code 3" {
		t.Fatalf("Status = exit code %d, reason %q; want 3, \"exited with code 3\"", *st.ExitCode, st.Reason)
	}
	if err := d.Stop(ctx, spec.ID, time.Second, false); err != nil {
		t.Fatalf("Stop of a guest that exited: %v", err)
	}
	// It starts again and exits again.
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	st = waitExited(t, ctx, d, spec.ID, 10*time.Second)
	if *st.ExitCode != 3 {
		t.Fatalf("second run: exit code %d, want 3", *st.ExitCode)
	}
}

func (s *suite) stopTimeout(t *testing.T) {
	d := s.newDriver(t)
	ctx := testContext(t)
	spec := s.start(t, ctx, d, s.cfg.IgnoreStop)
	if lr, ok := d.(driver.LogReader); ok && s.cfg.ReadyLine != "" {
		s.waitOutput(t, ctx, lr, spec.ID, s.cfg.ReadyLine)
	} else {
		time.Sleep(300 * time.Millisecond)
	}
	const timeout = 500 * time.Millisecond
	t0 := time.Now()
	if err := d.Stop(ctx, spec.ID, timeout, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	el := time.Since(t0)
	if el < timeout {
		t.Errorf("Stop returned after %s, before the timeout of a guest that ignores it", el)
	}
	if el > timeout+5*time.Second {
		t.Errorf("Stop took %s with a timeout of %s", el, timeout)
	}
	st := wantExited(t, ctx, d, spec.ID)
	if *st.ExitCode != s.cfg.KilledExitCode || st.Reason != s.cfg.KilledReason {
		t.Fatalf("Status = exit code %d, reason %q; want %d, %q", *st.ExitCode, st.Reason, s.cfg.KilledExitCode, s.cfg.KilledReason)
	}
}

func (s *suite) forceStop(t *testing.T) {
	d := s.newDriver(t)
	ctx := testContext(t)
	spec := s.start(t, ctx, d, s.cfg.IgnoreStop)
	t0 := time.Now()
	if err := d.Stop(ctx, spec.ID, time.Hour, true); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("forced Stop took %s", el)
	}
	st := wantExited(t, ctx, d, spec.ID)
	if *st.ExitCode != s.cfg.KilledExitCode || st.Reason != s.cfg.KilledReason {
		t.Fatalf("Status = exit code %d, reason %q; want %d, %q", *st.ExitCode, st.Reason, s.cfg.KilledExitCode, s.cfg.KilledReason)
	}
}

func (s *suite) logs(t *testing.T) {
	d := s.newDriver(t)
	lr, ok := d.(driver.LogReader)
	if !ok {
		if d.Capabilities().Logs {
			t.Fatal("Capabilities says Logs, but the driver is no LogReader")
		}
		t.Skip("the driver keeps no logs")
	}
	if !d.Capabilities().Logs {
		t.Error("the driver is a LogReader, but Capabilities does not say Logs")
	}
	if len(s.cfg.OutputLines) < 3 {
		t.Fatal("drivertest.Config.OutputLines needs at least 3 lines")
	}
	ctx := testContext(t)
	spec := s.create(t, ctx, d, s.cfg.Output)
	if b, err := lr.Logs(ctx, spec.ID, 0); err != nil || len(b) != 0 {
		t.Fatalf("Logs of a guest never started = %q, %v; want nothing", b, err)
	}
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	lines := s.cfg.OutputLines
	all := strings.Join(lines, "\n") + "\n"
	if b := s.waitOutput(t, ctx, lr, spec.ID, lines[len(lines)-1]+"\n"); !bytes.Contains(b, []byte(all)) {
		t.Fatalf("Logs = %q, want it to hold %q", b, all)
	}
	b, err := lr.Logs(ctx, spec.ID, 2)
	if err != nil {
		t.Fatalf("Logs(tail 2): %v", err)
	}
	if want := strings.Join(lines[len(lines)-2:], "\n") + "\n"; string(b) != want {
		t.Fatalf("Logs(tail 2) = %q, want %q", b, want)
	}
	b, err = lr.Logs(ctx, spec.ID, 1000)
	if err != nil || !bytes.Equal(b, []byte(all)) {
		t.Fatalf("Logs(tail 1000) = %q, %v; want %q", b, err, all)
	}
	// Logs outlive the run.
	if err := d.Stop(ctx, spec.ID, 10*time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if b, err := lr.Logs(ctx, spec.ID, 1); err != nil || string(b) != lines[len(lines)-1]+"\n" {
		t.Fatalf("Logs(tail 1) after Stop = %q, %v", b, err)
	}
	_, err = lr.Logs(ctx, uuid.NewString(), 0)
	wantCode(t, err, novacron.ENotFound, "Logs of an unknown guest")
}

func (s *suite) unknownGuest(t *testing.T) {
	d := s.newDriver(t)
	ctx := testContext(t)
	spec := s.spec(s.cfg.Run)
	_, err := d.Status(ctx, spec.ID)
	wantCode(t, err, novacron.ENotFound, "Status")
	wantCode(t, d.Start(ctx, spec), novacron.ENotFound, "Start")
	wantCode(t, d.Stop(ctx, spec.ID, time.Second, false), novacron.ENotFound, "Stop")
	if p, ok := d.(driver.Pauser); ok {
		wantCode(t, p.Pause(ctx, spec.ID), novacron.ENotFound, "Pause")
		wantCode(t, p.Resume(ctx, spec.ID), novacron.ENotFound, "Resume")
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatalf("Delete of an unknown guest: %v", err)
	}
	_, err = d.Status(ctx, "../../etc")
	wantCode(t, err, novacron.ENotFound, "Status of a malformed id")
}

func (s *suite) twoGuests(t *testing.T) {
	d := s.newDriver(t)
	ctx := testContext(t)
	a := s.start(t, ctx, d, s.cfg.Run)
	b := s.start(t, ctx, d, s.cfg.Run)
	sa, sb := wantRunning(t, ctx, d, a.ID), wantRunning(t, ctx, d, b.ID)
	if sa.PID == sb.PID {
		t.Fatalf("two guests share pid %d", sa.PID)
	}
	if err := d.Stop(ctx, a.ID, 10*time.Second, false); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantExited(t, ctx, d, a.ID)
	wantRunning(t, ctx, d, b.ID)
	ids, err := d.List(ctx)
	if err != nil || !contains(ids, a.ID) || !contains(ids, b.ID) {
		t.Fatalf("List = %v, %v; want both guests", ids, err)
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
