package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func imageID(i *novacron.Image) string { return i.ID }

// sha is a well-formed digest that differs per n.
func sha(n int) string { return fmt.Sprintf("%064x", n) }

func mustImage(t *testing.T, s Store, tenantID, name, format string, size int64, public bool) *novacron.Image {
	t.Helper()
	img := &novacron.Image{Name: name, Format: format, Size: size, SHA256: sha(int(size)), TenantID: tenantID, Public: public}
	noErr(t, s.CreateImage(ctx(t), img), "CreateImage "+name)
	return img
}

func testImageCreateGet(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	before := time.Now()
	img := &novacron.Image{Name: "debian 12", Format: novacron.ImageQCOW2, Size: 1 << 30,
		SHA256: strings.ToUpper(sha(7)), TenantID: strings.ToUpper(tn.ID)}
	noErr(t, s.CreateImage(c, img), "CreateImage")
	after := time.Now()
	wantID(t, img.ID)
	wantStoreTime(t, "image CreatedAt", img.CreatedAt, before, after)
	want := &novacron.Image{ID: img.ID, Name: "debian 12", Format: "qcow2", Size: 1 << 30, SHA256: sha(7),
		TenantID: tn.ID, CreatedAt: img.CreatedAt}
	wantEqual(t, "created image", img, want)
	for _, scope := range []novacron.Scope{novacron.AllTenants, novacron.TenantScope(tn.ID)} {
		got, err := s.GetImage(c, scope, strings.ToUpper(img.ID))
		noErr(t, err, "GetImage")
		wantEqual(t, "GetImage", got, want)
	}
	_, err := s.GetImage(c, novacron.TenantScope(other.ID), img.ID)
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetImage(c, novacron.AllTenants, missingID)
	wantCode(t, err, novacron.ENotFound)

	// A public image is seen by every tenant.
	pub := mustImage(t, s, tn.ID, "kernel", novacron.ImageKernel, 10, true)
	got, err := s.GetImage(c, novacron.TenantScope(other.ID), pub.ID)
	noErr(t, err, "GetImage public")
	wantEqual(t, "public image", got, pub)
	if !got.Public {
		t.Error("public image is not public")
	}

	// The name is unique in the tenant only; the id is unique.
	wantMessage(t, s.CreateImage(c, &novacron.Image{Name: "debian 12", Format: novacron.ImageRaw, SHA256: sha(1),
		TenantID: tn.ID}), novacron.EConflict, "an image named debian 12 already exists")
	mustImage(t, s, other.ID, "debian 12", novacron.ImageRaw, 5, false)
	wantMessage(t, s.CreateImage(c, &novacron.Image{ID: img.ID, Name: "dup", Format: novacron.ImageRaw, SHA256: sha(1),
		TenantID: tn.ID}), novacron.EConflict, "image id already exists")

	n, err := s.TenantImageBytes(c, tn.ID)
	noErr(t, err, "TenantImageBytes")
	if n != 1<<30+10 {
		t.Errorf("TenantImageBytes = %d, want %d", n, 1<<30+10)
	}
	n, err = s.TenantImageBytes(c, mustTenant(t, s, "empty").ID)
	noErr(t, err, "TenantImageBytes empty")
	if n != 0 {
		t.Errorf("TenantImageBytes of an empty tenant = %d", n)
	}
	_, err = s.TenantImageBytes(c, missingID)
	wantCode(t, err, novacron.ENotFound)

	// A tenant that owns images cannot be deleted.
	wantCode(t, s.DeleteTenant(c, other.ID), novacron.EConflict)
}

func testImageCreateInvalid(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	ok := func() *novacron.Image {
		return &novacron.Image{Name: "img", Format: novacron.ImageRaw, Size: 1, SHA256: sha(1), TenantID: tn.ID}
	}
	for name, tc := range map[string]struct {
		mod   func(*novacron.Image)
		field string
	}{
		"no name":        {func(i *novacron.Image) { i.Name = "" }, "name"},
		"slash":          {func(i *novacron.Image) { i.Name = "a/b" }, "name"},
		"control":        {func(i *novacron.Image) { i.Name = "a\nb" }, "name"},
		"long name":      {func(i *novacron.Image) { i.Name = strings.Repeat("x", 256) }, "name"},
		"format":         {func(i *novacron.Image) { i.Format = "vmdk" }, "format"},
		"no format":      {func(i *novacron.Image) { i.Format = "" }, "format"},
		"size":           {func(i *novacron.Image) { i.Size = -1 }, "size"},
		"sha256":         {func(i *novacron.Image) { i.SHA256 = "abc" }, "sha256"},
		"sha256 hex":     {func(i *novacron.Image) { i.SHA256 = strings.Repeat("g", 64) }, "sha256"},
		"no tenant":      {func(i *novacron.Image) { i.TenantID = "" }, "tenant_id"},
		"missing tenant": {func(i *novacron.Image) { i.TenantID = missingID }, "tenant_id"},
		"bad id":         {func(i *novacron.Image) { i.ID = "42" }, "id"},
	} {
		t.Run(name, func(t *testing.T) {
			img := ok()
			tc.mod(img)
			err := s.CreateImage(c, img)
			wantCode(t, err, novacron.EInvalid)
			wantDetails(t, err, map[string]any{"field": tc.field})
		})
	}
	wantCode(t, s.CreateImage(c, nil), novacron.EInvalid)
	imgs, _, err := s.ListImages(c, novacron.AllTenants, novacron.ImageFilter{})
	noErr(t, err, "ListImages")
	if len(imgs) != 0 {
		t.Errorf("invalid creates left %d images", len(imgs))
	}
}

// testImageCommand keeps a rootfs image's default command as it was
// given, argument for argument, and no command as none.
func testImageCommand(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	cmd := []string{"/bin/sh", "-c", `echo "hi" 'there' \ $HOME`, "", "ünïcode ☃", strings.Repeat("x", 4096)}
	img := &novacron.Image{Name: "busybox", Format: novacron.ImageRootfs, Size: 10, SHA256: sha(1), TenantID: tn.ID,
		Command: slices.Clone(cmd)}
	noErr(t, s.CreateImage(c, img), "CreateImage")
	wantEqual(t, "created command", img.Command, cmd)
	got, err := s.GetImage(c, novacron.TenantScope(tn.ID), img.ID)
	noErr(t, err, "GetImage")
	wantEqual(t, "stored command", got.Command, cmd)
	// The longest command allowed fits.
	long := append([]string{"/bin/echo"}, slices.Repeat([]string{strings.Repeat("y", 4096)}, 15)...)
	long = append(long, strings.Repeat("z", novacron.MaxImageCommandBytes-len("/bin/echo")-15*4096))
	big := &novacron.Image{Name: "long", Format: novacron.ImageRootfs, Size: 1, SHA256: sha(2), TenantID: tn.ID, Command: long}
	noErr(t, s.CreateImage(c, big), "CreateImage with the longest command")
	wantEqual(t, "longest command", big.Command, long)
	// Without a command, a rootfs image has none: nil, not empty.
	plain := mustImage(t, s, tn.ID, "plain", novacron.ImageRootfs, 3, false)
	if plain.Command != nil {
		t.Errorf("an image without a command has %#v", plain.Command)
	}
	imgs, _, err := s.ListImages(c, novacron.TenantScope(tn.ID), novacron.ImageFilter{})
	noErr(t, err, "ListImages")
	if len(imgs) != 3 {
		t.Fatalf("ListImages = %d images, want 3", len(imgs))
	}
	wantEqual(t, "listed command", imgs[0].Command, cmd)
	wantEqual(t, "listed longest command", imgs[1].Command, long)
	if imgs[2].Command != nil {
		t.Errorf("listed image without a command has %#v", imgs[2].Command)
	}

	for name, tc := range map[string]struct {
		format  string
		command []string
		field   string
	}{
		"command of a disk":  {novacron.ImageQCOW2, []string{"/bin/sh"}, "command"},
		"empty command":      {novacron.ImageRootfs, []string{}, "command"},
		"relative program":   {novacron.ImageRootfs, []string{"sh", "-c", "true"}, "command[0]"},
		"too many arguments": {novacron.ImageRootfs, append([]string{"/bin/echo"}, make([]string, 256)...), "command"},
		"long argument":      {novacron.ImageRootfs, []string{"/bin/echo", strings.Repeat("x", 4097)}, "command[1]"},
		"long command":       {novacron.ImageRootfs, append(slices.Clone(long), "x"), "command"},
		"NUL":                {novacron.ImageRootfs, []string{"/bin/echo", "a\x00b"}, "command[1]"},
		"invalid UTF-8":      {novacron.ImageRootfs, []string{"/bin/echo", "\xff"}, "command[1]"},
	} {
		t.Run(name, func(t *testing.T) {
			err := s.CreateImage(c, &novacron.Image{Name: "bad", Format: tc.format, Size: 1, SHA256: sha(3), TenantID: tn.ID,
				Command: tc.command})
			wantCode(t, err, novacron.EInvalid)
			wantDetails(t, err, map[string]any{"field": tc.field})
		})
	}
	if imgs, _, _ := s.ListImages(c, novacron.AllTenants, novacron.ImageFilter{}); len(imgs) != 3 {
		t.Errorf("invalid commands left %d images, want 3", len(imgs))
	}
}

func testImageQuota(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	tn.Quotas = novacron.Quotas{ImagesGB: ptr[int64](1)}
	noErr(t, s.UpdateTenant(c, tn), "UpdateTenant")
	mustImage(t, s, tn.ID, "a", novacron.ImageRaw, 1<<29, false)
	mustImage(t, s, tn.ID, "b", novacron.ImageRaw, 1<<29, false) // exactly the quota
	err := s.CreateImage(c, &novacron.Image{Name: "c", Format: novacron.ImageRaw, Size: 1, SHA256: sha(1), TenantID: tn.ID})
	wantCode(t, err, novacron.EQuotaExceeded)
	wantDetails(t, err, map[string]any{"quota": "images_gb", "limit": int64(1), "used": int64(1 << 30), "requested": int64(1)})
	// An empty image takes nothing; the VM quotas do not count images.
	mustImage(t, s, tn.ID, "empty", novacron.ImageRaw, 0, false)
	mustVM(t, s, tn.ID, "web", nil)
}

func testImageList(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	var own, all, pub []string
	for i := range 7 {
		img := mustImage(t, s, tn.ID, fmt.Sprintf("img%d", i), novacron.ImageFormats[i%len(novacron.ImageFormats)],
			int64(i), i == 3)
		own, all = append(own, img.ID), append(all, img.ID)
		if img.Public {
			pub = append(pub, img.ID)
		}
		o := mustImage(t, s, other.ID, fmt.Sprintf("img%d", i), novacron.ImageRaw, int64(i+100), false)
		all = append(all, o.ID)
	}
	list := func(scope novacron.Scope, f novacron.ImageFilter) func(string) ([]*novacron.Image, string, error) {
		return func(cursor string) ([]*novacron.Image, string, error) {
			f.Page = novacron.Page{Limit: 3, Cursor: cursor}
			return s.ListImages(c, scope, f)
		}
	}
	wantEqual(t, "all images", collect(t, 3, 5, list(novacron.AllTenants, novacron.ImageFilter{}), imageID), all)
	wantEqual(t, "own images", collect(t, 3, 3, list(novacron.TenantScope(tn.ID), novacron.ImageFilter{}), imageID), own)
	// The other tenant sees its own and the public one, in id order.
	got := collect(t, 3, 3, list(novacron.TenantScope(other.ID), novacron.ImageFilter{}), imageID)
	if len(got) != 8 || !contains(got, pub[0]) {
		t.Errorf("other tenant lists %v, want its 7 and the public %s", got, pub[0])
	}
	wantEqual(t, "by format", collect(t, 3, 1, list(novacron.TenantScope(tn.ID), novacron.ImageFilter{Format: novacron.ImageQCOW2}), imageID),
		[]string{own[0], own[5]})
	wantEqual(t, "by name", collect(t, 3, 1, list(novacron.AllTenants, novacron.ImageFilter{Name: "img2"}), imageID),
		[]string{all[4], all[5]})
	wantEqual(t, "public by name", collect(t, 3, 1, list(novacron.TenantScope(other.ID), novacron.ImageFilter{Name: "img3"}), imageID),
		[]string{all[6], all[7]})
	_, _, err := s.ListImages(c, novacron.AllTenants, novacron.ImageFilter{Page: novacron.Page{Cursor: "!"}})
	wantCode(t, err, novacron.EInvalid)
	imgs, next, err := s.ListImages(c, novacron.TenantScope("bogus"), novacron.ImageFilter{})
	noErr(t, err, "ListImages malformed scope")
	if len(imgs) != 0 || next != "" {
		t.Errorf("a malformed scope lists %d images", len(imgs))
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func testImageDelete(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	img := mustImage(t, s, tn.ID, "a", novacron.ImageRaw, 1, false)
	pub := mustImage(t, s, tn.ID, "p", novacron.ImageRaw, 2, true)

	wantCode(t, s.DeleteImage(c, novacron.TenantScope(other.ID), img.ID), novacron.ENotFound)
	// A public image is visible, but only deletable across every tenant.
	wantCode(t, s.DeleteImage(c, novacron.TenantScope(other.ID), pub.ID), novacron.EForbidden)
	wantCode(t, s.DeleteImage(c, novacron.TenantScope(tn.ID), pub.ID), novacron.EForbidden)
	noErr(t, s.DeleteImage(c, novacron.TenantScope(tn.ID), strings.ToUpper(img.ID)), "DeleteImage")
	_, err := s.GetImage(c, novacron.AllTenants, img.ID)
	wantCode(t, err, novacron.ENotFound)
	wantCode(t, s.DeleteImage(c, novacron.TenantScope(tn.ID), img.ID), novacron.ENotFound)
	noErr(t, s.DeleteImage(c, novacron.AllTenants, pub.ID), "DeleteImage public")
	wantCode(t, s.DeleteImage(c, novacron.AllTenants, missingID), novacron.ENotFound)
	n, err := s.TenantImageBytes(c, tn.ID)
	noErr(t, err, "TenantImageBytes")
	if n != 0 {
		t.Errorf("TenantImageBytes after deletes = %d", n)
	}
	// The name is free again.
	mustImage(t, s, tn.ID, "a", novacron.ImageRaw, 1, false)
}

func testImageDeleteInUse(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	disk := mustImage(t, s, tn.ID, "disk", novacron.ImageQCOW2, 1, false)
	kernel := mustImage(t, s, tn.ID, "kernel", novacron.ImageKernel, 2, false)
	initrd := mustImage(t, s, tn.ID, "initrd", novacron.ImageInitrd, 3, false)
	vm, _ := mustVM(t, s, tn.ID, "web", func(v *novacron.VM) { v.ImageID = disk.ID })
	config, _ := json.Marshal(map[string]any{"kernel_image_id": kernel.ID, "initrd_image_id": strings.ToUpper(initrd.ID)})
	vm2, _ := mustVM(t, s, tn.ID, "boot", func(v *novacron.VM) { v.Driver = novacron.DriverQEMU; v.Config = config })
	for _, img := range []*novacron.Image{disk, kernel, initrd} {
		wantMessage(t, s.DeleteImage(c, novacron.AllTenants, img.ID), novacron.EConflict, "image is in use by a VM")
		wantMessage(t, s.DeleteImage(c, novacron.TenantScope(tn.ID), img.ID), novacron.EConflict, "image is in use by a VM")
	}
	noErr(t, s.DeleteVM(c, vm.ID), "DeleteVM")
	noErr(t, s.DeleteImage(c, novacron.TenantScope(tn.ID), disk.ID), "DeleteImage disk")
	noErr(t, s.DeleteVM(c, vm2.ID), "DeleteVM boot")
	noErr(t, s.DeleteImage(c, novacron.TenantScope(tn.ID), kernel.ID), "DeleteImage kernel")
	noErr(t, s.DeleteImage(c, novacron.TenantScope(tn.ID), initrd.ID), "DeleteImage initrd")
}

// testImageDeleteRace deletes a kernel image while VMs naming it in their
// config are created: whatever the order, no VM is left naming an image
// that is gone, and an image is deleted only when no VM names it.
func testImageDeleteRace(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	for round := range 10 {
		kernel := mustImage(t, s, tn.ID, fmt.Sprintf("kernel%d", round), novacron.ImageKernel, 2, false)
		config, _ := json.Marshal(map[string]any{"kernel_image_id": kernel.ID})
		errs := race(5, func(i int) error {
			if i == 0 {
				return s.DeleteImage(c, novacron.AllTenants, kernel.ID)
			}
			vm := &novacron.VM{Name: fmt.Sprintf("vm%d-%d", round, i), Driver: novacron.DriverQEMU, TenantID: tn.ID,
				CPUs: 1, MemoryMB: 64, Config: config}
			return s.CreateVM(c, vm, &novacron.Operation{Action: "create"})
		})
		created := 0
		for _, err := range errs[1:] {
			switch {
			case err == nil:
				created++
			case !novacron.IsCode(err, novacron.EInvalid):
				t.Fatalf("round %d: CreateVM = %v, want success or invalid_request", round, err)
			}
		}
		_, gerr := s.GetImage(c, novacron.AllTenants, kernel.ID)
		switch {
		case errs[0] == nil && created > 0:
			t.Fatalf("round %d: the image was deleted and %d VMs naming it were created", round, created)
		case errs[0] != nil && !novacron.IsCode(errs[0], novacron.EConflict):
			t.Fatalf("round %d: DeleteImage = %v", round, errs[0])
		case errs[0] != nil && created == 0:
			t.Fatalf("round %d: DeleteImage = %v with no VM created", round, errs[0])
		case errs[0] == nil && gerr == nil, errs[0] != nil && gerr != nil:
			t.Fatalf("round %d: DeleteImage = %v, but GetImage = %v", round, errs[0], gerr)
		}
	}
}
