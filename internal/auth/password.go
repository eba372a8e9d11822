// Package auth is NovaCron's authentication and authorization: password
// hashing, session-bound JWTs, personal API tokens, login back-off and the
// pure decision function that every route's permission goes through.
package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"unicode/utf8"

	"github.com/novacron/novacron"
	"golang.org/x/crypto/bcrypt"
)

// BcryptCost is the work factor of password hashes.
const BcryptCost = 12

// Password length bounds. bcrypt reads at most 72 bytes; longer passwords are
// refused rather than silently truncated.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 72
)

// ValidatePassword checks a new password's length.
func ValidatePassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return novacron.FieldError("password", "must be at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return novacron.FieldError("password", "must be at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// HashPassword validates pw and returns its bcrypt hash.
func HashPassword(pw string) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), BcryptCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches hash.
func CheckPassword(hash, pw string) bool {
	if len(pw) > MaxPasswordLen {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// dummyHash is compared against when a login names an unknown user, so that
// the answer takes as long as for a wrong password. It is made on first use:
// every start of the binary (each guest's shim among them) would pay for it.
var dummyHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("novacron-dummy-password"), BcryptCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

// GeneratePassword returns a random password of 24 URL-safe characters.
func GeneratePassword() string {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("auth: no randomness: " + err.Error()))
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
