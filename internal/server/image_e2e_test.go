package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
