package server_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/testenv"
)

// requireRunc skips (fails in CI) where containers cannot run.
func requireRunc(t *testing.T) {
	t.Helper()
	requireGuests(t)
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Missing(t, "runc", "runc is not installed (apt-get install runc)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "runc", "/bin/busybox is missing (apt-get install busybox-static)")
	}
}

// busyboxTar is a busybox root file system as a tarball; extra entries
// are appended as they are.
func busyboxTar(t *testing.T, extra ...*tar.Header) []byte {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = time.Unix(1700000000, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/"} {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, app := range []string{"sh", "sleep", "echo", "cat", "id", "hostname"} {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + app, Linkname: "busybox", Mode: 0o777}, nil)
	}
	for _, h := range extra {
		add(h, nil)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestContainersThroughTheAPI: a busybox rootfs uploaded with a default
// command, containers created and run from it through the API with their
// limits applied, a pause that freezes, a container that exits by itself
// with its code, bad tarballs refused, and a control plane restart with
// containers running: re-adopted, never restarted.
func TestContainersThroughTheAPI(t *testing.T) {
	requireRunc(t)
	dir := shortTempDir(t)
	cfg := func(c *server.Config) { fastReconcile(c); c.DataDir = dir; c.MetricsInterval = time.Second }
	h := start(t, "", cfg)
	cleanGuests(t, h)
	admin := h.admin()

	// Tarballs that would reach outside the root or make devices are refused.
	for name, bad := range map[string]*tar.Header{
		"dotdot": {Typeflag: tar.TypeReg, Name: "../escape", Mode: 0o644},
		"device": {Typeflag: tar.TypeChar, Name: "dev/mem", Mode: 0o600, Devmajor: 1, Devminor: 1},
		"link":   {Typeflag: tar.TypeSymlink, Name: "bin/evil", Linkname: "../../../etc/shadow", Mode: 0o777},
	} {
		r := h.want(h.upload(admin, "bad-"+name, "rootfs", busyboxTar(t, bad)), 400, "invalid_request")
		if !strings.Contains(string(r.raw), strings.TrimSuffix(bad.Name, "/")) {
			t.Errorf("%s: the refusal does not name the entry: %s", name, r.raw)
		}
	}

	img := h.want(h.upload(admin, "busybox", "rootfs", busyboxTar(t), "command", `["/bin/sh","-c","echo default-command; exec sleep 3600"]`), 201)
	if cmd, _ := img.body["command"].([]any); len(cmd) != 3 {
		t.Fatalf("image: %s", img.raw)
	}
	imageID := img.str("id")
	mk := func(name string, config map[string]any) reply {
		return h.req("POST", "/api/vm/vms?wait=1", admin, map[string]any{"name": name, "driver": "container",
			"image_id": imageID, "cpus": 1, "memory_mb": 64, "start": true, "config": config})
	}
	logs := func(id string) string { return string(h.req("GET", "/api/vm/vms/"+id+"/logs", admin, nil).raw) }
	waitLog := func(id, want string) {
		t.Helper()
		eventually(t, "log "+want, func() error {
			if l := logs(id); !strings.Contains(l, want) {
				return fmt.Errorf("logs: %q", l)
			}
			return nil
		})
	}

	// The image's default command, and a command of the VM's own.
	def := h.want(mk("default", nil), 200).str("id")
	waitLog(def, "default-command")
	// The image's tmp/ is 0755 root: the container's /tmp is writable all
	// the same.
	own := h.want(mk("own", map[string]any{"command": []string{"/bin/sh", "-c", "echo uid=$(id -u) host=$(hostname); echo x > /tmp/f && echo tmp-writable; exec sleep 3600"}}), 200)
	ownID := own.str("id")
	waitLog(ownID, "host=own")
	waitLog(ownID, "tmp-writable")
	pid := pidOf(t, h, ownID)
	if mem := cgroupFile(t, pid, "memory", "memory.limit_in_bytes", "memory.max"); mem != fmt.Sprint(64<<20) {
		t.Errorf("memory limit %s", mem)
	}
	if uid := procField(pid, "Uid"); strings.HasPrefix(uid, "0") {
		t.Errorf("the container runs as root: %s", uid)
	}
	// Its samples, from runc's stats.
	waitUsage(t, h, admin, ownID)

	// Pause freezes it; resume thaws it.
	h.want(h.req("POST", "/api/vm/vms/"+ownID+"/pause?wait=1", admin, nil), 200)
	if f := cgroupFile(t, pid, "freezer", "freezer.state", "cgroup.freeze"); f != "FROZEN" && f != "1" {
		t.Errorf("a paused container's freezer: %s", f)
	}
	h.want(h.req("POST", "/api/vm/vms/"+ownID+"/resume?wait=1", admin, nil), 200)

	// One that exits by itself, with its code.
	exits := h.want(mk("exits", map[string]any{"command": []string{"/bin/sh", "-c", "sleep 0.5; exit 7"}}), 200).str("id")
	eventually(t, "exit code", func() error {
		r := h.want(h.req("GET", "/api/vm/vms/"+exits, admin, nil), 200)
		if r.str("state") != "failed" || r.body["exit_code"] != 7.0 {
			return errors.New(string(r.raw))
		}
		return nil
	})

	// The control plane goes away; the containers stay, and are not
	// restarted by the next one.
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := h.srv.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	cancel()
	h2 := start(t, "", cfg)
	admin = h2.login("admin", adminPassword)
	if r := h2.want(h2.req("GET", "/api/vm/vms/"+ownID, admin, nil), 200); r.str("state") != "running" || pidOf(t, h2, ownID) != pid {
		t.Fatalf("after the restart: %s (pid %d, was %d)", r.raw, pidOf(t, h2, ownID), pid)
	}
	if l := string(h2.req("GET", "/api/vm/vms/"+ownID+"/logs", admin, nil).raw); strings.Count(l, "host=own") != 1 {
		t.Fatalf("the container ran again: %q", l)
	}
	h2.want(h2.req("POST", "/api/vm/vms/"+ownID+"/stop?wait=1", admin, map[string]any{"timeout_s": 1}), 200)
	if alive(pid) {
		t.Fatal("the adopted container survived its stop")
	}
	for _, id := range []string{def, ownID, exits} {
		h2.want(h2.req("DELETE", "/api/vm/vms/"+id+"?wait=1", admin, nil), 204)
	}
	if g, _ := h2.srv.Agent().ListGuests(t.Context()); len(g) != 0 {
		t.Fatalf("guests left: %+v", g)
	}
	h2.want(h2.req("DELETE", "/api/images/"+imageID, admin, nil), 204)
}
