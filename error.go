// Package novacron holds the domain of the NovaCron VM manager: its nouns
// (tenants, users, sessions, audit entries, VMs), the error vocabulary every
// layer speaks, and the service interfaces the adapters implement. It depends
// on the standard library only.
package novacron

import (
	"errors"
	"fmt"
)

// Error codes. They are the "code" field of the API's error body; only the
// HTTP layer maps them to statuses.
const (
	EInvalid         = "invalid_request"
	EUnauthorized    = "unauthorized"
	EForbidden       = "forbidden"
	ENotFound        = "not_found"
	EConflict        = "conflict"
	EInvalidState    = "invalid_state"
	EQuotaExceeded   = "quota_exceeded"
	ENoCapacity      = "no_capacity"
	ETooLarge        = "too_large"
	ERateLimited     = "rate_limited"
	EOperationFailed = "operation_failed"
	EInternal        = "internal"
	EUnavailable     = "unavailable"
)

// Error is a domain error: a code from the list above and a message that is
// safe to show to the client. Details carry structured extras (the bad field,
// a per-node reason). The wrapped cause is for logs only.
type Error struct {
	Code    string
	Message string
	Details map[string]any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns a coded error with a client-safe formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid_request error that names the offending field
// in its details.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Message: field + ": " + fmt.Sprintf(format, args...),
		Details: map[string]any{"field": field}}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err: the message of its
// *Error, or a generic text for anything else, so internal causes never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code string) bool { return ErrorCode(err) == code }
