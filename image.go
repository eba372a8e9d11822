package novacron

import (
	"context"
	"time"
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
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Format    string    `json:"format"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	TenantID  string    `json:"tenant_id"`
	Public    bool      `json:"public"`
	CreatedAt time.Time `json:"created_at"`
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
