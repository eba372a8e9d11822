package novacron

import (
	"context"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Image formats.
const (
	ImageQCOW2  = "qcow2"
	ImageRaw    = "raw"
	ImageKernel = "kernel"
	ImageInitrd = "initrd"
	ImageRootfs = "rootfs"
)

// ImageFormats are every image format, in the order the API lists them.
var ImageFormats = []string{ImageQCOW2, ImageRaw, ImageKernel, ImageInitrd, ImageRootfs}

// ValidImageFormat reports whether f is a known image format.
func ValidImageFormat(f string) bool {
	for _, v := range ImageFormats {
		if v == f {
			return true
		}
	}
	return false
}

// Image is an uploaded disk image, kernel, initrd or root file system. It
// belongs to a tenant; a public image (made by an admin) is visible to
// every tenant, for reading and using, but only admins may delete it.
type Image struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Format   string `json:"format"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	TenantID string `json:"tenant_id"`
	Public   bool   `json:"public"`
	// Command is the default command of a rootfs image, given at upload:
	// a container VM whose config names no command runs it. Without one,
	// the VM must name its command. Other formats never have one.
	Command   []string  `json:"command,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Limits of an image's default command.
const (
	MaxImageCommandArgs     = 256
	MaxImageCommandArgBytes = 4096
	MaxImageCommandBytes    = 64 << 10
)

// ValidateImageCommand checks the default command of an image of the
// format: only rootfs images take one; it has 1 to MaxImageCommandArgs
// arguments of valid UTF-8 without NUL bytes, each at most
// MaxImageCommandArgBytes and all together at most MaxImageCommandBytes,
// the first an absolute path (as a container's config.command). A nil
// command is none; an empty one is an error. The error is EInvalid naming
// the field "command" or the argument ("command[2]").
func ValidateImageCommand(format string, cmd []string) error {
	if cmd == nil {
		return nil
	}
	if format != ImageRootfs {
		return FieldError("command", "only rootfs images take a command")
	}
	if len(cmd) == 0 || len(cmd) > MaxImageCommandArgs {
		return FieldError("command", "must have 1 to %d elements", MaxImageCommandArgs)
	}
	total := 0
	for i, a := range cmd {
		field := "command[" + strconv.Itoa(i) + "]"
		switch {
		case len(a) > MaxImageCommandArgBytes:
			return FieldError(field, "must be at most %d bytes", MaxImageCommandArgBytes)
		case strings.IndexByte(a, 0) >= 0:
			return FieldError(field, "must not contain NUL bytes")
		case !utf8.ValidString(a):
			return FieldError(field, "must be valid UTF-8")
		}
		total += len(a)
	}
	if total > MaxImageCommandBytes {
		return FieldError("command", "must be at most %d bytes in all", MaxImageCommandBytes)
	}
	if !path.IsAbs(cmd[0]) {
		return FieldError("command[0]", "must be an absolute path")
	}
	return nil
}

// ImageFilter selects images. Empty fields do not filter; both match exactly.
type ImageFilter struct {
	Page
	Format string
	Name   string
}

// ImageStore is the persistence of images. The rules of Store apply
// (ENotFound for malformed ids, EConflict for duplicates), except that a
// tenant's scope also sees the public images of every tenant.
type ImageStore interface {
	// CreateImage inserts img (a new id when empty) and reloads it from the
	// row. It re-checks the tenant's images_gb quota against the sizes of
	// its images in the same transaction: EQuotaExceeded with the quota
	// named in the details. A bad name or format or a missing tenant is
	// EInvalid; a name taken in the tenant EConflict.
	CreateImage(ctx context.Context, img *Image) error
	// GetImage returns an image of the scope's tenant or a public one.
	GetImage(ctx context.Context, scope Scope, id string) (*Image, error)
	// ListImages lists the images of the scope's tenant and the public
	// ones, oldest first.
	ListImages(ctx context.Context, scope Scope, f ImageFilter) ([]*Image, string, error)
	// DeleteImage deletes an image of the scope's tenant. A public image
	// is EForbidden to a tenant scope (only AllTenants deletes it). An
	// image in use, the image_id of a VM or the kernel_image_id or
	// initrd_image_id of a VM's config, is EConflict: the check and the
	// delete are one transaction.
	DeleteImage(ctx context.Context, scope Scope, id string) error
	// TenantImageBytes sums the sizes of the tenant's images; ENotFound
	// when there is no tenant.
	TenantImageBytes(ctx context.Context, tenantID string) (int64, error)
}
