package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOverlay(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	lower, upper, work, target := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, target} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "image.txt"), []byte("from the image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mountOverlay(lower, upper, work, target); err != nil {
		t.Fatalf("mountOverlay: %v", err)
	}
	t.Cleanup(func() { _ = unmountOverlay(target) })
	if n := mountsAt(t, target); n != 1 {
		t.Fatalf("%d mounts at the target, want 1", n)
	}
	// A second mount of the same overlay is a no-op.
	if err := mountOverlay(lower, upper, work, target); err != nil {
		t.Fatalf("mountOverlay again: %v", err)
	}
	if n := mountsAt(t, target); n != 1 {
		t.Fatalf("%d mounts at the target after a second mountOverlay, want 1", n)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("the overlay's root: %v, %v; want the image's mode 0755, not upper's 0700", fi.Mode(), err)
	}

	if err := os.WriteFile(filepath.Join(target, "new.txt"), []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "image.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		filepath.Join(upper, "new.txt"):    "written",
		filepath.Join(upper, "image.txt"):  "changed",
		filepath.Join(lower, "image.txt"):  "from the image",
		filepath.Join(target, "image.txt"): "changed",
	} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(lower, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("the write reached the lower directory: %v", err)
	}

	if err := unmountOverlay(target); err != nil {
		t.Fatalf("unmountOverlay: %v", err)
	}
	if n := mountsAt(t, target); n != 0 {
		t.Fatalf("%d mounts at the target after unmountOverlay", n)
	}
	if _, err := os.Stat(filepath.Join(target, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("new.txt still visible at the target: %v", err)
	}
	// Idempotent: not mounted, or no target at all.
	if err := unmountOverlay(target); err != nil {
		t.Errorf("unmountOverlay of an unmounted target: %v", err)
	}
	if err := unmountOverlay(filepath.Join(dir, "nothing")); err != nil {
		t.Errorf("unmountOverlay of a missing target: %v", err)
	}
	// Mounted again, the upper layer is still there.
	if err := mountOverlay(lower, upper, work, target); err != nil {
		t.Fatalf("mountOverlay after unmount: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "new.txt")); err != nil || string(b) != "written" {
		t.Errorf("new.txt after a remount = %q, %v", b, err)
	}
	if err := unmountOverlay(target); err != nil {
		t.Fatalf("unmountOverlay: %v", err)
	}
}

func TestOverlayRefusesPaths(t *testing.T) {
	for _, p := range []string{"/a,b", "/a:b", `/a\b`, "relative", "/a\nb"} {
		if err := mountOverlay(p, "/u", "/w", "/t"); err == nil || !strings.Contains(err.Error(), "must be absolute") {
			t.Errorf("mountOverlay(%q) = %v", p, err)
		}
		if err := mountOverlay("/l", "/u", "/w", p); err == nil || !strings.Contains(err.Error(), "must be absolute") {
			t.Errorf("mountOverlay(target %q) = %v", p, err)
		}
	}
}

// mountsAt counts the mounts whose mount point is target.
func mountsAt(t *testing.T, target string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == target {
			n++
		}
	}
	return n
}
