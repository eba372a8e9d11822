package cli_test

import (
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
