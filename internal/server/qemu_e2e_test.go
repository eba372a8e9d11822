package server_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	h := start(t, "", func(c *server.Config) { fastReconcile(c); c.QEMUAccel = "tcg"; c.StopTimeout = 60 * time.Second })
	cleanGuests(t, h)
	admin := h.admin()
	kid := h.uploadFile(admin, kernel, "test-kernel", "kernel")
	iid := h.uploadFile(admin, initrd, "test-initrd", "initrd")

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
	eventually(t, "boot marker", func() error {
		if !strings.Contains(logs(), "NOVACRON-BOOT-OK") {
			return fmt.Errorf("console: %q", tail(logs(), 300))
		}
		return nil
	})
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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
