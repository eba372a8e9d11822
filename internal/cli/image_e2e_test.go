package cli_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/novacron/novacron"
)

func TestCLIImages(t *testing.T) {
	isolateEnv(t)
	srv := startServer(t, "")
	url := srv.URL()
	ok(t, e2eAdminPassword+"\n", "login", "--server", url, "--username", "admin", "--password-stdin")

	dir := t.TempDir()
	kernel := make([]byte, 8192)
	copy(kernel[0x202:], "HdrS")
	p := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(p, kernel, 0o600); err != nil {
		t.Fatal(err)
	}
	var img novacron.Image
	decode(t, ok(t, "", "image", "upload", p, "--format", "kernel", "--public", "-o", "json"), &img)
	if img.Name != "vmlinuz" || img.Format != "kernel" || img.Size != 8192 || !img.Public || len(img.SHA256) != 64 {
		t.Fatalf("uploaded %+v", img)
	}
	out := ok(t, "", "image", "upload", p, "--name", "k2", "--format", "kernel")
	if field(t, out, "Name") != "k2" || field(t, out, "Public") != "false" {
		t.Errorf("upload printed:\n%s", out)
	}
	out = ok(t, "", "image", "list", "--format", "kernel")
	if !strings.Contains(out, img.ID) || !strings.Contains(out, "k2") || !strings.Contains(out, "8.0 KiB") {
		t.Errorf("image list printed:\n%s", out)
	}
	if field(t, ok(t, "", "image", "show", "vmlinuz"), "ID") != img.ID {
		t.Error("image show by name found another image")
	}
	if field(t, ok(t, "", "image", "show", img.ID), "Name") != "vmlinuz" {
		t.Error("image show by id found another image")
	}
	fails(t, "no such file", "image", "upload", p+"x", "--format", "kernel")
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, make([]byte, 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, "not a valid kernel image", "image", "upload", junk, "--format", "kernel")
	if r := runCLI(t, "", "image", "upload", junk, "--format", "vmdk"); r.code != 2 || !strings.Contains(r.stderr, "must be one of") {
		t.Errorf("a bad --format: exit %d, %q", r.code, r.stderr)
	}
	ok(t, "", "image", "delete", "vmlinuz")
	ok(t, "", "image", "rm", "k2")
	fails(t, "no image named", "image", "show", "vmlinuz")
}

// writeTar writes a tar archive of the entries to a file in dir.
func writeTar(t *testing.T, dir, name string, hdrs ...*tar.Header) string {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, h := range hdrs {
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, h.Size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIRootfsImages(t *testing.T) {
	isolateEnv(t)
	srv := startServer(t, "")
	ok(t, e2eAdminPassword+"\n", "login", "--server", srv.URL(), "--username", "admin", "--password-stdin")

	dir := t.TempDir()
	good := writeTar(t, dir, "busybox.tar",
		&tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755},
		&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: 100},
		&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "busybox"})
	var img novacron.Image
	decode(t, ok(t, "", "image", "upload", good, "--format", "rootfs", "--command", `["/bin/sh", "-c", "echo hi"]`, "-o", "json"), &img)
	if img.Format != "rootfs" || len(img.Command) != 3 || img.Command[2] != "echo hi" {
		t.Fatalf("uploaded %+v", img)
	}
	if got := field(t, ok(t, "", "image", "show", "busybox.tar"), "Command"); got != `["/bin/sh","-c","echo hi"]` {
		t.Errorf("image show: Command %s", got)
	}
	if out := ok(t, "", "image", "upload", good, "--name", "plain", "--format", "rootfs"); strings.Contains(out, "Command:") {
		t.Errorf("an image without a command shows one:\n%s", out)
	}
	for _, bad := range []string{"/bin/sh", `["/bin/sh"] []`, "null", `{"a":1}`, ""} {
		if r := runCLI(t, "", "image", "upload", good, "--name", "x", "--format", "rootfs", "--command", bad); r.code != 2 ||
			!strings.Contains(r.stderr, "--command must be a JSON array of strings") {
			t.Errorf("--command %q: exit %d, %q", bad, r.code, r.stderr)
		}
	}
	fails(t, "command[0]: must be an absolute path", "image", "upload", good, "--name", "x", "--format", "rootfs", "--command", `["sh"]`)
	fails(t, "only rootfs images take a command", "image", "upload", good, "--name", "x", "--format", "raw", "--command", `["/bin/sh"]`)
	evil := writeTar(t, dir, "evil.tar", &tar.Header{Typeflag: tar.TypeSymlink, Name: "etc", Linkname: "../../../etc"})
	fails(t, `entry "etc": its target "../../../etc" leaves the root`, "image", "upload", evil, "--format", "rootfs")
}
