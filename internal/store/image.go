package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/novacron/novacron"
)

// MaxImageNameLen bounds an image's name, in bytes.
const MaxImageNameLen = 255

// ValidImageName returns EInvalid naming the field "name" unless name is 1
// to MaxImageNameLen bytes of printable UTF-8 without a slash.
func ValidImageName(name string) error {
	switch {
	case name == "":
		return novacron.FieldError("name", "is required")
	case len(name) > MaxImageNameLen:
		return novacron.FieldError("name", "must be at most %d bytes", MaxImageNameLen)
	case !utf8.ValidString(name) || strings.ContainsRune(name, '/') ||
		strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return novacron.FieldError("name", "must be printable text without '/'")
	}
	return nil
}

// PrepareImage validates img for CreateImage and returns a copy with a new
// id (when empty) and a canonical tenant id. img itself is not changed.
func PrepareImage(img *novacron.Image) (novacron.Image, error) {
	if img == nil {
		return novacron.Image{}, novacron.FieldError("image", "is required")
	}
	v := *img
	if err := ValidImageName(v.Name); err != nil {
		return v, err
	}
	if !novacron.ValidImageFormat(v.Format) {
		return v, novacron.FieldError("format", "must be one of %s", strings.Join(novacron.ImageFormats, ", "))
	}
	if v.Size < 0 {
		return v, novacron.FieldError("size", "must not be negative")
	}
	if err := novacron.ValidateImageCommand(v.Format, v.Command); err != nil {
		return v, err
	}
	v.SHA256 = strings.ToLower(v.SHA256)
	if len(v.SHA256) != 64 || strings.Trim(v.SHA256, "0123456789abcdef") != "" {
		return v, novacron.FieldError("sha256", "must be 64 hexadecimal digits")
	}
	tenant, ok := ParseID(v.TenantID)
	if !ok {
		return v, novacron.FieldError("tenant_id", "tenant does not exist")
	}
	v.TenantID = tenant
	if err := AssignID(&v.ID); err != nil {
		return v, err
	}
	return v, nil
}

// EncodeImageCommand returns an image's command as its column holds it:
// a JSON array, or nil (NULL) for none.
func EncodeImageCommand(cmd []string) ([]byte, error) {
	if cmd == nil {
		return nil, nil
	}
	return json.Marshal(cmd)
}

// DecodeImageCommand reads an image's command column: nil for NULL.
func DecodeImageCommand(b []byte) ([]string, error) {
	if b == nil {
		return nil, nil
	}
	var cmd []string
	if err := json.Unmarshal(b, &cmd); err != nil {
		return nil, fmt.Errorf("store: image command: %w", err)
	}
	return cmd, nil
}

// CheckImageQuota returns EQuotaExceeded when a tenant holding used bytes
// of images may not add requested more under its images_gb quota (GiB).
func CheckImageQuota(q novacron.Quotas, used, requested int64) error {
	if q.ImagesGB == nil || requested <= 0 {
		return nil
	}
	limit := *q.ImagesGB << 30
	if used+requested <= limit {
		return nil
	}
	return &novacron.Error{
		Code: novacron.EQuotaExceeded,
		Message: fmt.Sprintf("quota images_gb exceeded: %d bytes used + %d requested > %d GiB",
			used, requested, *q.ImagesGB),
		Details: map[string]any{"quota": "images_gb", "limit": *q.ImagesGB, "used": used, "requested": requested},
	}
}

// ImageNameTaken is the error of an image name already used in the tenant.
func ImageNameTaken(name string) error {
	return novacron.Errorf(novacron.EConflict, "an image named %s already exists", name)
}

// ImageInUse is the error of deleting an image that a VM uses.
func ImageInUse() error {
	return novacron.Errorf(novacron.EConflict, "image is in use by a VM")
}

// PublicImage is the error of a tenant deleting a public image.
func PublicImage() error {
	return novacron.Errorf(novacron.EForbidden, "a public image can only be deleted by an admin")
}

// ImageRef is an image a VM's config names, with the field naming it.
type ImageRef struct{ Field, ID string }

// ConfigImages returns the images a VM's config names (a qemu VM's kernel
// and initrd), which no foreign key guards: the stores check them inside
// the transaction that writes the VM. A config that is not a JSON object
// names none (the driver validated it).
func ConfigImages(config json.RawMessage) []ImageRef {
	var c struct {
		Kernel string `json:"kernel_image_id"`
		Initrd string `json:"initrd_image_id"`
	}
	if len(config) == 0 || json.Unmarshal(config, &c) != nil {
		return nil
	}
	var refs []ImageRef
	if c.Kernel != "" {
		refs = append(refs, ImageRef{"config.kernel_image_id", c.Kernel})
	}
	if c.Initrd != "" {
		refs = append(refs, ImageRef{"config.initrd_image_id", c.Initrd})
	}
	return refs
}
