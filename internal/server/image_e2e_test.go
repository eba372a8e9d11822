package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/testenv"
)

// testKernel is the smallest file with a bzImage header.
func testKernel(n int) []byte {
	b := make([]byte, n)
	copy(b[0x202:], "HdrS")
	return b
}

// upload posts content as an image.
func (h *harness) upload(token, name, format string, content []byte, extra ...string) reply {
	h.t.Helper()
	q := url.Values{"name": {name}, "format": {format}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return h.req("POST", "/api/images?"+q.Encode(), token, content, "Content-Type", "application/octet-stream")
}

// imageFiles lists the server's image directory.
func imageFiles(t *testing.T, h *harness) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(h.srv.Config().DataDir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestImages(t *testing.T) {
	stores(t, func(t *testing.T, db func(t *testing.T) string) {
		h := start(t, db(t), func(c *server.Config) { c.MaxImageSize = 2 << 20 })
		admin := h.admin()
		acme := h.mkTenant(admin, "acme")
		other := h.mkTenant(admin, "other")
		_, alice := h.mkUser(admin, "alice", "user", acme)
		_, bob := h.mkUser(admin, "bob", "user", other)

		content := testKernel(8192)
		sum := sha256.Sum256(content)
		img := h.want(h.upload(alice, "vmlinuz", "kernel", content), 201)
		id := img.str("id")
		if img.str("sha256") != hex.EncodeToString(sum[:]) || img.body["size"] != float64(len(content)) ||
			img.str("format") != "kernel" || img.str("tenant_id") != acme || img.body["public"] != false ||
			img.str("name") != "vmlinuz" || img.str("created_at") == "" {
			t.Errorf("uploaded image = %s", img.raw)
		}

		t.Run("list and get", func(t *testing.T) {
			h := h.on(t)
			if items := h.want(h.req("GET", "/api/images", alice, nil), 200).items(); len(items) != 1 || items[0]["id"] != id {
				t.Errorf("alice lists %v", items)
			}
			if items := h.want(h.req("GET", "/api/images?format=kernel&name=vmlinuz", alice, nil), 200).items(); len(items) != 1 {
				t.Errorf("filtered list %v", items)
			}
			if items := h.want(h.req("GET", "/api/images?format=raw", alice, nil), 200).items(); len(items) != 0 {
				t.Errorf("format=raw lists %v", items)
			}
			h.want(h.req("GET", "/api/images?format=vmdk", alice, nil), 400, "invalid_request")
			h.want(h.req("GET", "/api/images/"+id, alice, nil), 200)
			h.want(h.req("GET", "/api/images/"+id, admin, nil), 200)
			h.want(h.req("GET", "/api/images/"+id, bob, nil), 404, "not_found")
			h.want(h.req("DELETE", "/api/images/"+id, bob, nil), 404, "not_found")
			if items := h.want(h.req("GET", "/api/images", bob, nil), 200).items(); len(items) != 0 {
				t.Errorf("bob lists %v", items)
			}
			h.want(h.req("GET", "/api/images/not-an-id", alice, nil), 404, "not_found")
			h.want(h.req("DELETE", "/api/images/not-an-id", alice, nil), 404, "not_found")
			h.want(h.req("GET", "/api/images", "", nil), 401)
		})

		t.Run("bad uploads", func(t *testing.T) {
			h := h.on(t)
			h.want(h.upload(alice, "x", "vmdk", content), 400, "invalid_request")
			h.want(h.upload(alice, "", "kernel", content), 400, "invalid_request")
			h.want(h.upload(alice, "x", "kernel", make([]byte, 8192)), 400, "invalid_request")
			h.want(h.upload(alice, "x", "kernel", nil), 400, "invalid_request")
			h.want(h.upload(alice, "x", "kernel", content, "public", "maybe"), 400, "invalid_request")
			h.want(h.req("POST", "/api/images?name=x&format=kernel", alice, content), 400, "invalid_request") // JSON content type
			h.want(h.upload(alice, "vmlinuz", "kernel", content), 409, "conflict")
			// Over the size limit: bigger than the 1 MiB JSON limit would
			// allow is fine, bigger than the image limit is not.
			h.want(h.upload(alice, "big", "kernel", testKernel(2<<20+1)), 413, "too_large")
			h.want(h.upload(alice, "x", "kernel", content, "public", "true"), 403, "forbidden")
			if files := imageFiles(t, h); len(files) != 1 || files[0] != id {
				t.Errorf("refused uploads left %v", files)
			}
			// Exactly the limit fits.
			fits := h.want(h.upload(alice, "fits", "kernel", testKernel(2<<20)), 201).str("id")
			h.want(h.req("DELETE", "/api/images/"+fits, alice, nil), 204)
		})

		t.Run("quota", func(t *testing.T) {
			h := h.on(t)
			h.want(h.req("PUT", "/api/tenants/"+other, admin, map[string]any{"quotas": map[string]any{"images_gb": 0}}), 200)
			r := h.want(h.upload(bob, "k", "kernel", content), 409, "quota_exceeded")
			if d, _ := r.body["error"].(map[string]any)["details"].(map[string]any); d["quota"] != "images_gb" {
				t.Errorf("quota error %s", r.raw)
			}
			if files := imageFiles(t, h); len(files) != 1 {
				t.Errorf("a refused upload left %v", files)
			}
		})

		t.Run("public", func(t *testing.T) {
			h := h.on(t)
			pub := h.want(h.upload(admin, "shared-kernel", "kernel", content, "public", "true"), 201).str("id")
			h.want(h.req("GET", "/api/images/"+pub, bob, nil), 200)
			if items := h.want(h.req("GET", "/api/images", bob, nil), 200).items(); len(items) != 1 || items[0]["id"] != pub {
				t.Errorf("bob lists %v", items)
			}
			h.want(h.req("DELETE", "/api/images/"+pub, bob, nil), 403, "forbidden")
			h.want(h.req("DELETE", "/api/images/"+pub, admin, nil), 204)
			h.want(h.req("GET", "/api/images/"+pub, bob, nil), 404)
		})

		t.Run("in use", func(t *testing.T) {
			h := h.on(t)
			ctx := context.Background()
			used := h.want(h.upload(alice, "disk", "kernel", content), 201).str("id")
			vm := &novacron.VM{Name: "uses-disk", Driver: novacron.DriverProcess, TenantID: acme, CPUs: 1, MemoryMB: 16, ImageID: used,
				Config: json.RawMessage(`{"command":["/bin/true"]}`)}
			if err := h.srv.Store().CreateVM(ctx, vm, &novacron.Operation{Action: "create"}); err != nil {
				t.Fatal(err)
			}
			h.want(h.req("DELETE", "/api/images/"+used, alice, nil), 409, "conflict")
			kern := h.want(h.upload(alice, "kern", "kernel", content), 201).str("id")
			cfg, _ := json.Marshal(map[string]any{"kernel_image_id": kern})
			vm2 := &novacron.VM{Name: "boots-kern", Driver: novacron.DriverQEMU, TenantID: acme, CPUs: 1, MemoryMB: 16, Config: cfg}
			if err := h.srv.Store().CreateVM(ctx, vm2, &novacron.Operation{Action: "create"}); err != nil {
				t.Fatal(err)
			}
			h.want(h.req("DELETE", "/api/images/"+kern, alice, nil), 409, "conflict")
			for _, v := range []*novacron.VM{vm, vm2} {
				if err := h.srv.Store().DeleteVM(ctx, v.ID); err != nil {
					t.Fatal(err)
				}
			}
			h.want(h.req("DELETE", "/api/images/"+used, alice, nil), 204)
			h.want(h.req("DELETE", "/api/images/"+kern, alice, nil), 204)
		})

		t.Run("delete", func(t *testing.T) {
			h := h.on(t)
			h.want(h.req("DELETE", "/api/images/"+id, alice, nil), 204)
			h.want(h.req("GET", "/api/images/"+id, alice, nil), 404)
			if files := imageFiles(t, h); len(files) != 0 {
				t.Errorf("deletes left %v", files)
			}
		})

		t.Run("qcow2", func(t *testing.T) {
			h := h.on(t)
			if _, err := exec.LookPath("qemu-img"); err != nil {
				testenv.Missing(t, "qemu", "qemu-img is not on the PATH")
			}
			dir := t.TempDir()
			p := filepath.Join(dir, "disk.qcow2")
			if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "1G").CombinedOutput(); err != nil {
				t.Fatalf("qemu-img: %v: %s", err, out)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			h.want(h.upload(alice, "disk.qcow2", "qcow2", b), 201)
			h.want(h.upload(alice, "not-qcow2", "qcow2", content), 400, "invalid_request")
		})
	})
}

// rootfsTar is a tar archive of the entries, each file's body its size in
// zero bytes.
func rootfsTar(t *testing.T, hdrs ...*tar.Header) []byte {
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
	return b.Bytes()
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImagesRootfs(t *testing.T) {
	stores(t, func(t *testing.T, db func(t *testing.T) string) {
		h := start(t, db(t), func(c *server.Config) { c.MaxImageSize = 2 << 20 })
		admin := h.admin()
		acme := h.mkTenant(admin, "acme")
		_, alice := h.mkUser(admin, "alice", "user", acme)
		tree := rootfsTar(t,
			&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
			&tar.Header{Typeflag: tar.TypeDir, Name: "./bin/", Mode: 0o755},
			&tar.Header{Typeflag: tar.TypeReg, Name: "./bin/busybox", Mode: 0o4755, Size: 1000},
			&tar.Header{Typeflag: tar.TypeSymlink, Name: "./bin/sh", Linkname: "busybox"},
			&tar.Header{Typeflag: tar.TypeSymlink, Name: "./bin/ls", Linkname: "/bin/busybox"},
			&tar.Header{Typeflag: tar.TypeLink, Name: "./bin/cat", Linkname: "./bin/busybox"},
			&tar.Header{Typeflag: tar.TypeDir, Name: "./tmp/", Mode: 0o1777},
		)

		t.Run("with a command", func(t *testing.T) {
			h := h.on(t)
			cmd := `["/bin/sh","-c","echo \"hi\" && exec sleep 3600"]`
			img := h.want(h.upload(alice, "busybox", "rootfs", gzipOf(t, tree), "command", cmd), 201)
			want := []any{"/bin/sh", "-c", `echo "hi" && exec sleep 3600`}
			if got, _ := img.body["command"].([]any); !reflect.DeepEqual(got, want) || img.str("format") != "rootfs" {
				t.Errorf("uploaded %s", img.raw)
			}
			got := h.want(h.req("GET", "/api/images/"+img.str("id"), alice, nil), 200)
			if c, _ := got.body["command"].([]any); !reflect.DeepEqual(c, want) {
				t.Errorf("GET %s", got.raw)
			}
			items := h.want(h.req("GET", "/api/images?name=busybox", alice, nil), 200).items()
			if len(items) != 1 || !reflect.DeepEqual(items[0]["command"], want) {
				t.Errorf("list %v", items)
			}
			// Without a command, the image has none: the field is absent.
			plain := h.want(h.upload(alice, "plain", "rootfs", tree), 201)
			if _, ok := plain.body["command"]; ok {
				t.Errorf("an image without a command: %s", plain.raw)
			}
		})

		t.Run("bad commands", func(t *testing.T) {
			h := h.on(t)
			for _, tc := range []struct{ format, command, field string }{
				{"rootfs", `/bin/sh`, "command"},
				{"rootfs", `["/bin/sh"] ["x"]`, "command"},
				{"rootfs", `null`, "command"},
				{"rootfs", `[]`, "command"},
				{"rootfs", `[1]`, "command"},
				{"rootfs", `["sh"]`, "command[0]"},
				{"rootfs", `["/bin/echo","a\u0000b"]`, "command[1]"},
				{"rootfs", `["/bin/echo","` + strings.Repeat("x", 4097) + `"]`, "command[1]"},
				{"kernel", `["/bin/sh"]`, "command"},
			} {
				r := h.want(h.upload(alice, "x", tc.format, tree, "command", tc.command), 400, "invalid_request")
				if d, _ := r.body["error"].(map[string]any)["details"].(map[string]any); d["field"] != tc.field {
					t.Errorf("%s %.40s: %s", tc.format, tc.command, r.raw)
				}
			}
		})

		t.Run("bad entries", func(t *testing.T) {
			h := h.on(t)
			before := imageFiles(t, h)
			for _, tc := range []struct {
				name    string
				archive []byte
				entry   string
				reason  string
			}{
				{"absolute", rootfsTar(t, &tar.Header{Typeflag: tar.TypeReg, Name: "/etc/passwd", Size: 10}),
					`"/etc/passwd"`, "the name is absolute"},
				{"dot dot", gzipOf(t, rootfsTar(t, &tar.Header{Typeflag: tar.TypeReg, Name: "a/../../etc/cron.d/x", Size: 10})),
					`"a/../../etc/cron.d/x"`, `the name has a ".." component`},
				{"device", rootfsTar(t, &tar.Header{Typeflag: tar.TypeDir, Name: "dev/"},
					&tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Devmajor: 8}),
					`"dev/sda"`, "a block device node"},
				{"escaping symlink", rootfsTar(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/lib/x", Linkname: "../../../../etc"}),
					`"usr/lib/x"`, `its target "../../../../etc" leaves the root`},
				{"hard link out", rootfsTar(t, &tar.Header{Typeflag: tar.TypeLink, Name: "shadow", Linkname: "/etc/shadow"}),
					`"shadow"`, `its target "/etc/shadow": the name is absolute`},
				{"through a symlink", rootfsTar(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "etc", Linkname: "/etc"},
					&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Size: 1}),
					`"etc/passwd"`, `its parent "etc" is a symbolic link`},
				{"escaped name", rootfsTar(t, &tar.Header{Typeflag: tar.TypeFifo, Name: "run/\x1b[2J\n<b>"}),
					`"run/\x1b[2J\n<b>"`, "a FIFO"},
			} {
				r := h.want(h.upload(alice, "bad", "rootfs", tc.archive), 400, "invalid_request")
				e, _ := r.body["error"].(map[string]any)
				d, _ := e["details"].(map[string]any)
				msg, _ := e["message"].(string)
				if d["entry"] != tc.entry || d["reason"] != tc.reason ||
					msg != "not a valid rootfs image: entry "+tc.entry+": "+tc.reason {
					t.Errorf("%s: %s", tc.name, r.raw)
				}
			}
			// Refused at its first entry, while the client still sends
			// the rest: the answer is the entry's error all the same.
			early := append(rootfsTar(t, &tar.Header{Typeflag: tar.TypeChar, Name: "dev/mem", Devmajor: 1, Devminor: 1}),
				make([]byte, 2<<20-3<<9)...)
			r := h.want(h.upload(alice, "early", "rootfs", early), 400, "invalid_request")
			if !strings.Contains(string(r.raw), `entry \"dev/mem\": a character device node`) {
				t.Errorf("refused early: %s", r.raw)
			}
			// Too much once unpacked: 8 times the 2 MiB limit.
			big := gzipOf(t, rootfsTar(t, &tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Size: 17 << 20}))
			h.want(h.upload(alice, "big", "rootfs", big), 413, "too_large")
			h.want(h.upload(alice, "junk", "rootfs", testKernel(8192)), 400, "invalid_request")
			if files := imageFiles(t, h); len(files) != len(before) {
				t.Errorf("refused uploads left %v (before: %v)", files, before)
			}
		})
	})
}
