package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/novacron/novacron"
)

// Error is an error answered by the server: the decoded body
// {"error": {"code", "message", "request_id", "details"}} and the HTTP status.
// When the body is not the API's (a proxy's HTML page, say), Code is derived
// from the status and Message is the status text with the start of the body.
type Error struct {
	Status    int            `json:"-"`
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
	// RetryAfter is the server's Retry-After on 429 and 503 answers, or 0.
	RetryAfter time.Duration `json:"-"`
}

// Error returns "<message> (<code>, request <id>)", the form the CLI prints.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	b.WriteString(" (")
	b.WriteString(e.Code)
	if e.RequestID != "" {
		b.WriteString(", request ")
		b.WriteString(e.RequestID)
	}
	b.WriteString(")")
	return b.String()
}

// IsCode reports whether err is, or wraps, an *Error with the given code (one
// of the novacron.E* constants).
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ErrorCode returns the code of the *Error in err's chain, or "" when there is
// none (a transport error, a cancelled context).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// decodeError builds the *Error of a failed response from its body.
func decodeError(resp *http.Response, body []byte) *Error {
	var envelope struct {
		Error *Error `json:"error"`
	}
	e := &Error{}
	if json.Unmarshal(body, &envelope) == nil && envelope.Error != nil && envelope.Error.Code != "" {
		e = envelope.Error
	} else {
		e.Code = codeForStatus(resp.StatusCode)
		e.Message = http.StatusText(resp.StatusCode)
		if e.Message == "" {
			e.Message = "HTTP " + strconv.Itoa(resp.StatusCode)
		}
		if s := strings.TrimSpace(string(body)); s != "" {
			const maxLen = 200
			if len(s) > maxLen {
				s = strings.ToValidUTF8(s[:maxLen], "") + "…"
			}
			e.Message += ": " + s
		}
	}
	e.Status = resp.StatusCode
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-ID")
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// codeForStatus guesses the code of an answer that carries no API error body.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return novacron.EInvalid
	case http.StatusUnauthorized:
		return novacron.EUnauthorized
	case http.StatusForbidden:
		return novacron.EForbidden
	case http.StatusNotFound:
		return novacron.ENotFound
	case http.StatusConflict:
		return novacron.EConflict
	case http.StatusRequestEntityTooLarge:
		return novacron.ETooLarge
	case http.StatusTooManyRequests:
		return novacron.ERateLimited
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return novacron.EUnavailable
	}
	if status >= 400 && status < 500 {
		return novacron.EInvalid
	}
	return novacron.EInternal
}
