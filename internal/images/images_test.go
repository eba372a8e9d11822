package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/testenv"
)

func needQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Missing(t, "qemu", "qemu-img is not on the PATH (apt-get install qemu-utils)")
	}
}

// qemuImg runs qemu-img create in dir and returns the file's content.
func qemuImg(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	needQemuImg(t)
	p := filepath.Join(dir, name)
	cmd := exec.Command("qemu-img", append(append([]string{"create", "-q"}, args[:len(args)-1]...), p, args[len(args)-1])...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	s      *Store
	db     *sqlite.Store
	dir    string
	tenant *novacron.Tenant
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tn := &novacron.Tenant{Name: "acme"}
	if err := db.CreateTenant(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	cfg.Dir = filepath.Join(t.TempDir(), "images")
	s, err := New(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{s: s, db: db, dir: cfg.Dir, tenant: tn}
}

func (f *fixture) upload(t *testing.T, name, format string, b []byte) (*novacron.Image, error) {
	t.Helper()
	return f.s.Upload(context.Background(), UploadRequest{Name: name, Format: format, TenantID: f.tenant.ID, Size: -1},
		bytes.NewReader(b))
}

// files lists the directory of the store.
func (f *fixture) files(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := novacron.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want %q", err, got, code)
	}
}

func kernel() []byte {
	b := make([]byte, 4096)
	copy(b[0x202:], "HdrS")
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestUploadFormats(t *testing.T) {
	needQemuImg(t)
	tmp := t.TempDir()
	qcow2 := qemuImg(t, tmp, "ok.qcow2", "-f", "qcow2", "64M")
	backing := qemuImg(t, tmp, "backing.qcow2", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", "1M")
	dataFile := qemuImg(t, tmp, "data.qcow2", "-f", "qcow2", "-o", "data_file="+filepath.Join(tmp, "data.raw"), "1M")
	raw := bytes.Repeat([]byte{0xab}, 1<<20)

	for _, tc := range []struct {
		name, format string
		content      []byte
		ok           bool
	}{
		{"qcow2", "qcow2", qcow2, true},
		{"qcow2 with a backing file", "qcow2", backing, false},
		{"qcow2 with a data file", "qcow2", dataFile, false},
		{"raw declared qcow2", "qcow2", raw, false},
		{"truncated qcow2", "qcow2", qcow2[:100], false},
		{"raw", "raw", raw, true},
		// Told it is raw, qemu reads it as raw: a guest sees the qcow2
		// bytes, never a backing file.
		{"qcow2 declared raw", "raw", backing, true},
		{"kernel", "kernel", kernel(), true},
		{"kernel without HdrS", "kernel", raw, false},
		{"short kernel", "kernel", []byte("HdrS"), false},
		{"initrd gzip", "initrd", gzipped(t, []byte("070701")), true},
		{"initrd cpio", "initrd", []byte("070701000000"), true},
		{"initrd junk", "initrd", raw, false},
		{"rootfs tar", "rootfs", tarOf(t, busybox()...), true},
		{"rootfs gzip", "rootfs", gzipped(t, tarOf(t, busybox()...)), true},
		{"rootfs zstd", "rootfs", zstdOf(t, tarOf(t, busybox()...)), true},
		{"rootfs junk", "rootfs", raw, false},
		{"rootfs with a device", "rootfs", gzipped(t, tarOf(t, special(tar.TypeChar, "dev/kmsg"))), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			img, err := f.upload(t, "img", tc.format, tc.content)
			if !tc.ok {
				wantCode(t, err, novacron.EInvalid)
				if files := f.files(t); len(files) != 0 {
					t.Errorf("a refused upload left %v", files)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tc.content)
			if img.SHA256 != hex.EncodeToString(sum[:]) || img.Size != int64(len(tc.content)) || img.Format != tc.format ||
				img.TenantID != f.tenant.ID || img.Name != "img" {
				t.Errorf("image = %+v", img)
			}
			fi, err := os.Stat(filepath.Join(f.dir, img.ID))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
			}
			if files := f.files(t); len(files) != 1 {
				t.Errorf("files %v, want the image only", files)
			}
			// Open serves the file with what to check it against.
			rc, info, err := f.s.Open(context.Background(), img.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, tc.content) || info != (ImageInfo{ID: img.ID, Format: tc.format, SHA256: img.SHA256, Size: img.Size}) {
				t.Errorf("Open = %d bytes, %+v", len(got), info)
			}
		})
	}
}

// TestInspectRejectsBacking checks qemu-img's own verdict on a backing
// file, behind the header check.
func TestInspectRejectsBacking(t *testing.T) {
	needQemuImg(t)
	tmp := t.TempDir()
	qemuImg(t, tmp, "backing.qcow2", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", "1M")
	err := inspect(context.Background(), filepath.Join(tmp, "backing.qcow2"), "qcow2", InspectLimits{})
	wantCode(t, err, novacron.EInvalid)
	if !strings.Contains(novacron.ErrorMessage(err), "backing file") {
		t.Errorf("message %q does not name the backing file", novacron.ErrorMessage(err))
	}
}

// TestInspectLimits checks that qemu-img runs under the limits: with a
// tiny address space it cannot start, and the file is refused.
func TestInspectLimits(t *testing.T) {
	needQemuImg(t)
	tmp := t.TempDir()
	qemuImg(t, tmp, "ok.qcow2", "-f", "qcow2", "1M")
	p := filepath.Join(tmp, "ok.qcow2")
	if err := inspect(context.Background(), p, "qcow2", InspectLimits{}); err != nil {
		t.Fatalf("inspect with the default limits: %v", err)
	}
	err := inspect(context.Background(), p, "qcow2", InspectLimits{AddressSpace: 4 << 20})
	wantCode(t, err, novacron.EInvalid)
	argv := InspectCommand(p, "qcow2", InspectLimits{})
	joined := strings.Join(argv, " ")
	if !strings.Contains(joined, "info -f qcow2 --output=json -- "+p) {
		t.Errorf("command %q does not state the format", joined)
	}
	if !strings.Contains(joined, "--as=") && !strings.Contains(joined, "ulimit -v") {
		t.Errorf("command %q sets no address space limit", joined)
	}
}

func TestUploadLimits(t *testing.T) {
	t.Run("size limit", func(t *testing.T) {
		f := newFixture(t, Config{MaxSize: 4096})
		_, err := f.upload(t, "big", "kernel", append(kernel(), 0))
		wantCode(t, err, novacron.ETooLarge)
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
		// Announced too large: refused before reading.
		_, err = f.s.Upload(context.Background(), UploadRequest{Name: "big", Format: "kernel", TenantID: f.tenant.ID, Size: 5000},
			failingReader{t})
		wantCode(t, err, novacron.ETooLarge)
		// Exactly the limit fits.
		if _, err := f.upload(t, "fits", "kernel", kernel()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("quota", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.tenant.Quotas.ImagesGB = new(int64) // 0 GiB: nothing fits
		if err := f.db.UpdateTenant(context.Background(), f.tenant); err != nil {
			t.Fatal(err)
		}
		_, err := f.upload(t, "k", "kernel", kernel())
		wantCode(t, err, novacron.EQuotaExceeded)
		var e *novacron.Error
		if ok := asError(err, &e); !ok || e.Details["quota"] != "images_gb" {
			t.Errorf("details = %v", err)
		}
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
	})
	t.Run("max bytes reader", func(t *testing.T) {
		f := newFixture(t, Config{})
		body := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(kernel())), 100)
		_, err := f.s.Upload(context.Background(), UploadRequest{Name: "k", Format: "kernel", TenantID: f.tenant.ID, Size: -1}, body)
		wantCode(t, err, novacron.ETooLarge)
		if files := f.files(t); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
	})
	t.Run("empty, bad name, bad format, short body", func(t *testing.T) {
		f := newFixture(t, Config{})
		_, err := f.upload(t, "e", "raw", nil)
		wantCode(t, err, novacron.EInvalid)
		_, err = f.upload(t, "a/b", "kernel", kernel())
		wantCode(t, err, novacron.EInvalid)
		_, err = f.upload(t, "v", "vmdk", kernel())
		wantCode(t, err, novacron.EInvalid)
		_, err = f.s.Upload(context.Background(), UploadRequest{Name: "k", Format: "kernel", TenantID: f.tenant.ID, Size: 5000},
			bytes.NewReader(kernel()))
		wantCode(t, err, novacron.EInvalid)
		if files := f.files(t); len(files) != 0 {
			t.Errorf("refused uploads left %v", files)
		}
	})
	t.Run("name taken", func(t *testing.T) {
		f := newFixture(t, Config{})
		if _, err := f.upload(t, "k", "kernel", kernel()); err != nil {
			t.Fatal(err)
		}
		_, err := f.upload(t, "k", "kernel", kernel())
		wantCode(t, err, novacron.EConflict)
		if files := f.files(t); len(files) != 1 {
			t.Errorf("files %v, want the first image only", files)
		}
	})
}

type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("the body was read")
	return 0, io.EOF
}

func asError(err error, e **novacron.Error) bool { return errors.As(err, e) }

func TestDeleteAndOpen(t *testing.T) {
	f := newFixture(t, Config{})
	c := context.Background()
	img, err := f.upload(t, "k", "kernel", kernel())
	if err != nil {
		t.Fatal(err)
	}
	rc, info, err := f.s.Open(c, img.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, kernel()) || info.SHA256 != img.SHA256 || info.Size != img.Size {
		t.Errorf("Open: %d bytes, %+v", len(b), info)
	}

	other := &novacron.Tenant{Name: "other"}
	if err := f.db.CreateTenant(c, other); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.s.Delete(c, novacron.TenantScope(other.ID), img.ID), novacron.ENotFound)
	if err := f.s.Delete(c, novacron.TenantScope(f.tenant.ID), img.ID); err != nil {
		t.Fatal(err)
	}
	if files := f.files(t); len(files) != 0 {
		t.Errorf("delete left %v", files)
	}
	_, _, err = f.s.Open(c, img.ID)
	wantCode(t, err, novacron.ENotFound)
}
