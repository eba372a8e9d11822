package vm

import (
	"context"
	"encoding/json"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

// vmImages are the ids of the images a VM uses.
type vmImages struct {
	base, kernel, initrd string
}

// imageIDs reads the images a VM uses: its image_id and, for qemu, the
// kernel_image_id and initrd_image_id of its config.
func imageIDs(vm *novacron.VM) (vmImages, error) {
	return imagesOf(vm.Driver, vm.ImageID, vm.Config)
}

func imagesOf(driverName, imageID string, config json.RawMessage) (vmImages, error) {
	ids := vmImages{base: imageID}
	if driverName != novacron.DriverQEMU || len(config) == 0 {
		return ids, nil
	}
	// The driver validated the config strictly; only these two fields matter here.
	var c struct {
		Kernel string `json:"kernel_image_id"`
		Initrd string `json:"initrd_image_id"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return ids, novacron.FieldError("config", "must be a JSON object")
	}
	ids.kernel, ids.initrd = c.Kernel, c.Initrd
	return ids, nil
}

// checkImages checks that every image a new VM names exists for its tenant
// (its own or a public one) and is of a format its use takes.
func (s *Service) checkImages(ctx context.Context, actor *novacron.Actor, driverName, imageID string, config json.RawMessage) error {
	ids, err := imagesOf(driverName, imageID, config)
	if err != nil {
		return err
	}
	var baseFormats []string
	switch driverName {
	case novacron.DriverQEMU:
		baseFormats = []string{novacron.ImageQCOW2, novacron.ImageRaw}
	case novacron.DriverContainer:
		baseFormats = []string{novacron.ImageRootfs}
		if ids.base == "" {
			return novacron.FieldError("image_id", "a container VM needs a rootfs image")
		}
	}
	for _, c := range []struct {
		field, id string
		formats   []string
	}{
		{"image_id", ids.base, baseFormats},
		{"config.kernel_image_id", ids.kernel, []string{novacron.ImageKernel}},
		{"config.initrd_image_id", ids.initrd, []string{novacron.ImageInitrd}},
	} {
		if c.id == "" {
			continue
		}
		if len(c.formats) == 0 {
			return novacron.FieldError(c.field, "%s VMs use no image", driverName)
		}
		img, err := s.store.GetImage(ctx, auth.ScopeOf(actor), c.id)
		if novacron.IsCode(err, novacron.ENotFound) {
			return novacron.FieldError(c.field, "no such image")
		}
		if err != nil {
			return err
		}
		ok := false
		for _, f := range c.formats {
			ok = ok || img.Format == f
		}
		if !ok {
			return novacron.FieldError(c.field, "image %s is %s; this use takes %v", img.Name, img.Format, c.formats)
		}
		if driverName == novacron.DriverContainer && len(img.Command) == 0 && !namesCommand(config) {
			return novacron.FieldError("config.command", "image %s has no default command: the VM must name one", img.Name)
		}
	}
	return nil
}

// namesCommand reports whether a VM's config names a command.
func namesCommand(config json.RawMessage) bool {
	var c struct {
		Command []string `json:"command"`
	}
	return json.Unmarshal(config, &c) == nil && len(c.Command) > 0
}
