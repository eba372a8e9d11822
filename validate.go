package novacron

import (
	"net/mail"
	"regexp"
)

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,62}$`)
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// ValidateUsername checks a new username: 2 to 63 characters of lower-case
// letters, digits, '.', '_' and '-', starting with a letter or digit.
func ValidateUsername(s string) error {
	if !usernameRE.MatchString(s) {
		return FieldError("username", "must be 2-63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	return nil
}

// ValidateEmail checks an email address.
func ValidateEmail(s string) error {
	if len(s) > 254 {
		return FieldError("email", "must be at most 254 characters")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return FieldError("email", "must be a plain address like name@example.com")
	}
	return nil
}

// ValidateName checks the name of a tenant or similar resource: 1 to 63
// characters of lower-case letters, digits and '-', starting with a letter or
// digit (a DNS label).
func ValidateName(field, s string) error {
	if !nameRE.MatchString(s) {
		return FieldError(field, "must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit")
	}
	return nil
}

// MaxQuota bounds every quota value.
const MaxQuota = 1 << 40

// Validate checks that every set quota is between 0 and MaxQuota.
func (q Quotas) Validate() error {
	for _, f := range []struct {
		name string
		v    *int64
	}{{"quotas.vms", q.VMs}, {"quotas.vcpus", q.VCPUs}, {"quotas.memory_mb", q.MemoryMB},
		{"quotas.disk_gb", q.DiskGB}, {"quotas.images_gb", q.ImagesGB}} {
		if f.v != nil && (*f.v < 0 || *f.v > MaxQuota) {
			return FieldError(f.name, "must be between 0 and %d (omit or null for no limit)", int64(MaxQuota))
		}
	}
	return nil
}
