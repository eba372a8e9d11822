package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/testenv"
)

// testGuest is the kernel and initramfs of the QEMU test guest, built by
// scripts/qemu-test-guest.sh (make test does it and sets the variable).
func testGuest(t *testing.T) (kernel, initrd string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Missing(t, "qemu", "qemu-system-x86_64 is not installed")
	}
	dir := os.Getenv("NOVACRON_TEST_GUEST_DIR")
	if dir == "" {
		testenv.Missing(t, "qemu", "NOVACRON_TEST_GUEST_DIR is not set (scripts/qemu-test-guest.sh builds the guest)")
	}
	return filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.gz")
}

// uploadFile posts a file to the image store and returns the image's id.
func (h *harness) uploadFile(token, path, name, format string) string {
	h.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.want(h.upload(token, name, format, b), 201).str("id")
}

func TestQEMUGuestThroughTheAPI(t *testing.T) {
	requireGuests(t)
	kernel, initrd := testGuest(t)
	h := start(t, "", func(c *server.Config) {
		fastReconcile(c)
		c.QEMUAccel = "tcg"
		c.StopTimeout = 60 * time.Second
		c.MetricsInterval = time.Second
	})
	cleanGuests(t, h)
	admin := h.admin()
	kid := h.uploadFile(admin, kernel, "test-kernel", "kernel")
	iid := h.uploadFile(admin, initrd, "test-initrd", "initrd")

	// A qcow2 whose backing file is /etc/shadow, and files that are not
	// what their format says, are refused at upload.
	tmp := t.TempDir()
	evil := filepath.Join(tmp, "evil.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", evil, "1M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	evilBytes, err := os.ReadFile(evil)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.want(h.upload(admin, "evil", "qcow2", evilBytes), 400, "invalid_request"); !strings.Contains(r.str("message")+string(r.raw), "backing") {
		t.Errorf("the refusal does not say why: %s", r.raw)
	}
	kernelBytes, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	h.want(h.upload(admin, "not-qcow2", "qcow2", kernelBytes), 400, "invalid_request")
	h.want(h.upload(admin, "not-a-kernel", "kernel", evilBytes), 400, "invalid_request")

	// Images of the wrong kind are refused before anything is created.
	h.want(h.req("POST", "/api/vm/vms", admin, map[string]any{"name": "bad", "driver": "qemu", "cpus": 1, "memory_mb": 256,
		"config": map[string]any{"kernel_image_id": iid, "initrd_image_id": kid}}), 400, "invalid_request")
	h.want(h.req("POST", "/api/vm/vms", admin, map[string]any{"name": "bad", "driver": "qemu", "cpus": 1, "memory_mb": 256,
		"config": map[string]any{"kernel_image_id": kid, "port_forwards": []map[string]any{{"host_port": 22, "guest_port": 22, "proto": "tcp"}}}}), 400, "invalid_request")

	r := h.want(h.req("POST", "/api/vm/vms?wait=1&timeout=120s", admin, map[string]any{"name": "tiny", "driver": "qemu",
		"cpus": 1, "memory_mb": 256, "start": true,
		"config": map[string]any{"accel": "tcg", "kernel_image_id": kid, "initrd_image_id": iid, "cmdline": "console=ttyS0 quiet"}}), 200)
	id := r.str("id")
	if r.str("state") != "running" {
		t.Fatalf("created %s", r.raw)
	}
	logs := func() string { return string(h.req("GET", "/api/vm/vms/"+id+"/logs", admin, nil).raw) }
	waitBoot(t, h, admin, id, 1)
	// Its samples: the QEMU process's CPU and memory.
	waitUsage(t, h, admin, id)
	// An image in use cannot be deleted.
	h.want(h.req("DELETE", "/api/images/"+kid, admin, nil), 409, "conflict")

	// Pause stops the counter; resume lets it go on.
	h.want(h.req("POST", "/api/vm/vms/"+id+"/pause?wait=1", admin, nil), 200)
	time.Sleep(300 * time.Millisecond)
	before := strings.Count(logs(), "tick")
	time.Sleep(700 * time.Millisecond)
	if after := strings.Count(logs(), "tick"); after != before {
		t.Fatalf("a paused guest ticked: %d -> %d", before, after)
	}
	h.want(h.req("POST", "/api/vm/vms/"+id+"/resume?wait=1", admin, nil), 200)
	eventually(t, "ticks after resume", func() error {
		if n := strings.Count(logs(), "tick"); n <= before {
			return fmt.Errorf("%d ticks", n)
		}
		return nil
	})

	// A graceful stop: the guest powers itself off, long before the timeout.
	t0 := time.Now()
	s := h.want(h.req("POST", "/api/vm/vms/"+id+"/stop?wait=1&timeout=120s", admin, map[string]any{"timeout_s": 60}), 200)
	if s.str("state") != "stopped" || time.Since(t0) > 30*time.Second {
		t.Fatalf("graceful stop took %s: %s", time.Since(t0), s.raw)
	}
	if ec, ok := s.body["exit_code"].(float64); !ok || ec != 0 {
		t.Errorf("a powered-off guest's exit code: %v", s.body["exit_code"])
	}
	h.want(h.req("DELETE", "/api/vm/vms/"+id+"?wait=1", admin, nil), 204)
	h.want(h.req("DELETE", "/api/images/"+kid, admin, nil), 204)
	if g, _ := h.srv.Agent().ListGuests(t.Context()); len(g) != 0 {
		t.Fatalf("guests left: %+v", g)
	}
}

// waitBoot waits until the VM's console shows the n-th boot marker.
func waitBoot(t *testing.T, h *harness, token, id string, n int) {
	t.Helper()
	// A TCG boot takes 2 to 7 s here, much longer on a busy machine.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		logs := string(h.req("GET", "/api/vm/vms/"+id+"/logs", token, nil).raw)
		if strings.Count(logs, "NOVACRON-BOOT-OK") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no boot marker #%d on the console: %q", n, tail(logs, 300))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestQEMUStateFollowsEvents: with the periodic reconciliation out of the
// way (an hour), a QEMU killed, a guest that panics and a restart are all
// reflected through QMP events; a restart resets the guest in the same
// QEMU; the control plane restarted finds its guests running and goes on
// following them; a cloud-init seed holds the user data given.
func TestQEMUStateFollowsEvents(t *testing.T) {
	requireGuests(t)
	kernel, initrd := testGuest(t)
	dir := shortTempDir(t)
	cfg := func(c *server.Config) {
		c.DataDir = dir
		c.QEMUAccel = "tcg"
		c.ReconcileInterval = time.Hour
		c.StopTimeout = 60 * time.Second
	}
	h := start(t, "", cfg)
	cleanGuests(t, h)
	admin := h.admin()
	kid := h.uploadFile(admin, kernel, "test-kernel", "kernel")
	iid := h.uploadFile(admin, initrd, "test-initrd", "initrd")
	mk := func(name, cmdline string, extra map[string]any) string {
		config := map[string]any{"kernel_image_id": kid, "initrd_image_id": iid, "cmdline": cmdline}
		for k, v := range extra {
			config[k] = v
		}
		r := h.want(h.req("POST", "/api/vm/vms?wait=1&timeout=120s", admin, map[string]any{"name": name, "driver": "qemu",
			"cpus": 1, "memory_mb": 128, "start": true, "config": config}), 200)
		return r.str("id")
	}
	vmState := func(h *harness, token, id string) reply {
		return h.want(h.req("GET", "/api/vm/vms/"+id, token, nil), 200)
	}
	waitState := func(h *harness, token, id, state, reason string) reply {
		t.Helper()
		var r reply
		deadline := time.Now().Add(time.Minute)
		for {
			r = vmState(h, token, id)
			if r.str("state") == state && strings.Contains(r.str("state_reason"), reason) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("vm %s is not %s (%q) within a minute: %s", id, state, reason, r.raw)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A disk made from a qcow2 image: an overlay backed by the node's
	// cached copy, grown to disk_gb; and a cloud-init seed, made at create
	// time, holding the user data.
	base := filepath.Join(t.TempDir(), "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	baseImg := h.want(h.upload(admin, "base", "qcow2", mustRead(t, base)), 201)
	seeded := h.want(h.req("POST", "/api/vm/vms", admin, map[string]any{"name": "seeded", "driver": "qemu", "cpus": 1, "memory_mb": 128,
		"image_id": baseImg.str("id"), "disk_gb": 1,
		"config": map[string]any{"kernel_image_id": kid, "cloud_init": map[string]any{"user_data": "#cloud-config\nruncmd: [echo from-the-api]\n", "hostname": "seeded"}}}), 202).str("id")
	eventually(t, "disk", func() error {
		out, err := exec.Command("qemu-img", "info", "--output=json", "-f", "qcow2", filepath.Join(dir, "agent", "qemu", seeded, "disk.qcow2")).Output()
		if err != nil {
			return err
		}
		var info struct {
			VirtualSize int64  `json:"virtual-size"`
			Backing     string `json:"backing-filename"`
		}
		if err := json.Unmarshal(out, &info); err != nil {
			return err
		}
		if info.Backing != filepath.Join(dir, "agent", "images", baseImg.str("sha256")) || info.VirtualSize != 1<<30 {
			return fmt.Errorf("disk: %s", out)
		}
		return nil
	})
	eventually(t, "seed", func() error {
		iso, err := os.ReadFile(filepath.Join(dir, "agent", "qemu", seeded, "seed.iso"))
		if err != nil || !strings.Contains(string(iso), "runcmd: [echo from-the-api]") || !strings.Contains(string(iso), `"local-hostname": "seeded"`) {
			return fmt.Errorf("seed.iso: %v", err)
		}
		return nil
	})

	// kill -9 of QEMU: failed, with the reason, at once.
	id := mk("crashy", "console=ttyS0 quiet", nil)
	waitBoot(t, h, admin, id, 1)
	pid := pidOf(t, h, id)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitState(h, admin, id, "failed", "qemu exited unexpectedly")

	// Restart: the same QEMU boots the guest again.
	h.want(h.req("POST", "/api/vm/vms/"+id+"/start?wait=1&timeout=120s", admin, nil), 200)
	waitBoot(t, h, admin, id, 1)
	pid = pidOf(t, h, id)
	r := h.want(h.req("POST", "/api/vm/vms/"+id+"/restart?wait=1&timeout=120s", admin, nil), 200)
	if r.str("state") != "running" || pidOf(t, h, id) != pid {
		t.Fatalf("after restart: %s, pid %d (was %d)", r.raw, pidOf(t, h, id), pid)
	}
	waitBoot(t, h, admin, id, 2)

	// A guest that panics: failed, with the reason.
	panicky := mk("panicky", "console=ttyS0 quiet novacron.panic=1", nil)
	waitState(h, admin, panicky, "failed", "the guest panicked")

	// The control plane goes away; the guest does not. The next one finds
	// it running, controls it, and hears it die.
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := h.srv.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if !alive(pid) {
		t.Fatal("the guest died with the control plane")
	}
	h2 := start(t, "", cfg)
	admin = h2.login("admin", adminPassword)
	if r := vmState(h2, admin, id); r.str("state") != "running" || pidOf(t, h2, id) != pid {
		t.Fatalf("after the control plane restarted: %s (pid %d, was %d)", r.raw, pidOf(t, h2, id), pid)
	}
	h2.want(h2.req("POST", "/api/vm/vms/"+id+"/pause?wait=1", admin, nil), 200)
	h2.want(h2.req("POST", "/api/vm/vms/"+id+"/resume?wait=1", admin, nil), 200)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitState(h2, admin, id, "failed", "qemu exited unexpectedly")

	// A forced stop ends QEMU at once, as if killed.
	h2.want(h2.req("POST", "/api/vm/vms/"+id+"/start?wait=1&timeout=120s", admin, nil), 200)
	pid = pidOf(t, h2, id)
	t0 := time.Now()
	r = h2.want(h2.req("POST", "/api/vm/vms/"+id+"/stop?wait=1", admin, map[string]any{"force": true}), 200)
	if r.str("state") != "stopped" || r.body["exit_code"] != 137.0 || alive(pid) || time.Since(t0) > 10*time.Second {
		t.Fatalf("forced stop (%s): %s, qemu alive: %v", time.Since(t0), r.raw, alive(pid))
	}
	for _, v := range []string{id, panicky, seeded} {
		h2.want(h2.req("DELETE", "/api/vm/vms/"+v+"?wait=1", admin, nil), 204)
	}
	if g, _ := h2.srv.Agent().ListGuests(t.Context()); len(g) != 0 {
		t.Fatalf("guests left: %+v", g)
	}
}

// TestQEMUConsole: the serial console of a real guest through the API: a
// shell answers what is typed into the WebSocket, one connection at a
// time, the exchange is in /console/log, and another tenant cannot reach
// it.
func TestQEMUConsole(t *testing.T) {
	requireGuests(t)
	kernel, initrd := testGuest(t)
	h := start(t, "", func(c *server.Config) { c.QEMUAccel = "tcg" })
	cleanGuests(t, h)
	admin := h.admin()
	kid := h.uploadFile(admin, kernel, "test-kernel", "kernel")
	iid := h.uploadFile(admin, initrd, "test-initrd", "initrd")
	id := h.want(h.req("POST", "/api/vm/vms?wait=1&timeout=120s", admin, map[string]any{"name": "shell", "driver": "qemu",
		"cpus": 1, "memory_mb": 128, "start": true, "config": map[string]any{"kernel_image_id": kid, "initrd_image_id": iid,
			"cmdline": "console=ttyS0 quiet novacron.shell=1"}}), 200).str("id")
	waitBoot(t, h, admin, id, 1)

	c, r := h.dialConsole(admin, id, false)
	if c == nil {
		t.Fatalf("console: %d %s", r.status, r.raw)
	}
	typeConsole(t, c, "echo answer=$((6*7))\n")
	consoleUntil(t, c, "answer=42", time.Minute)
	// One at a time.
	if c2, r := h.dialConsole(admin, id, true); c2 != nil || r.status != 409 {
		t.Fatalf("a second console: %d %s", r.status, r.raw)
	}
	c.Close(websocket.StatusNormalClosure, "")
	log := string(h.want(h.req("GET", "/api/vm/vms/"+id+"/console/log", admin, nil), 200).raw)
	if !strings.Contains(log, "answer=42") || !strings.Contains(log, "NOVACRON-BOOT-OK") {
		t.Fatalf("console log: %q", tail(log, 300))
	}
	// Free again once closed (the server notices the close at once or
	// nearly).
	eventually(t, "console free again", func() error {
		c3, r := h.dialConsole(admin, id, true)
		if c3 == nil {
			return fmt.Errorf("%d %s", r.status, r.raw)
		}
		c3.Close(websocket.StatusNormalClosure, "")
		return nil
	})

	// Another tenant's user: not found.
	tn := h.mkTenant(admin, "other")
	_, other := h.mkUser(admin, "mallory", "operator", tn)
	if c4, r := h.dialConsole(other, id, false); c4 != nil || r.status != 404 {
		t.Fatalf("another tenant's console: %d %s", r.status, r.raw)
	}
	h.want(h.req("GET", "/api/vm/vms/"+id+"/console/log", other, nil), 404)

	// A stopped VM has no console, but its log stays.
	h.want(h.req("POST", "/api/vm/vms/"+id+"/stop?wait=1", admin, map[string]any{"force": true}), 200)
	if c5, r := h.dialConsole(admin, id, false); c5 != nil || r.status != 409 {
		t.Fatalf("console of a stopped VM: %d %s", r.status, r.raw)
	}
	if log := string(h.want(h.req("GET", "/api/vm/vms/"+id+"/console/log?tail=5", admin, nil), 200).raw); !strings.Contains(log, "answer=42") {
		t.Fatalf("console log of the stopped VM: %q", log)
	}
	h.want(h.req("DELETE", "/api/vm/vms/"+id+"?wait=1", admin, nil), 204)
}
