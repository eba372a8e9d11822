package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/novacron/novacron"
)

// statusOf maps an error code to its HTTP status. It is the only place that
// does.
func statusOf(code string) int {
	switch code {
	case novacron.EInvalid:
		return http.StatusBadRequest
	case novacron.EUnauthorized:
		return http.StatusUnauthorized
	case novacron.EForbidden:
		return http.StatusForbidden
	case novacron.ENotFound:
		return http.StatusNotFound
	case novacron.EConflict, novacron.EInvalidState, novacron.EQuotaExceeded, novacron.ENoCapacity:
		return http.StatusConflict
	case novacron.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case novacron.ERateLimited:
		return http.StatusTooManyRequests
	case novacron.EUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// response is what a handler returns when the answer is not a plain 200.
type response struct {
	status int
	body   any
	header http.Header
	// raw, when set, is written as is instead of body as JSON.
	raw []byte
	// stream, when set, writes the answer after its header, flushing as
	// it goes, until it returns or its context ends (serveStream).
	stream func(ctx context.Context, w io.Writer) error
}

func created(body any) *response           { return &response{status: http.StatusCreated, body: body} }
func noContent() *response                 { return &response{status: http.StatusNoContent} }
func withStatus(s int, body any) *response { return &response{status: s, body: body} }

// list is the shape of every list answer.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func newList[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items, NextCursor: next}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil && status != http.StatusNoContent {
		enc := json.NewEncoder(w)
		_ = enc.Encode(v)
	}
}

// writeError writes err in the API's error shape. Only the public message
// of a coded error reaches the client; anything else is "internal error".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := novacron.ErrorCode(err)
	var details map[string]any
	var e *novacron.Error
	if errors.As(err, &e) {
		details = e.Details
		if code == novacron.ERateLimited {
			if s, ok := e.Details["retry_after_s"].(int); ok {
				w.Header().Set("Retry-After", strconv.Itoa(s))
			}
		}
	}
	writeJSON(w, statusOf(code), errorBody{Error: errorDetail{
		Code:      code,
		Message:   novacron.ErrorMessage(err),
		RequestID: w.Header().Get("X-Request-ID"),
		Details:   details,
	}})
}

// rateLimited returns the error of a request held back for d seconds.
func rateLimited(msg string, seconds int) error {
	if seconds < 1 {
		seconds = 1
	}
	return &novacron.Error{Code: novacron.ERateLimited, Message: msg,
		Details: map[string]any{"retry_after_s": seconds}}
}

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 1 << 20

// decode reads a JSON body strictly into v: the right content type, one
// object, no unknown fields, no trailing data, at most MaxBodyBytes. Its
// errors name the offending field.
func decode(r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return novacron.Errorf(novacron.EInvalid, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return novacron.Errorf(novacron.EInvalid, "request body must hold a single JSON object")
	}
	return nil
}

// decodeOptional is decode for a body that may be absent or empty.
func decodeOptional(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return decodeError(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return decode(r, v)
}

func decodeError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return novacron.Errorf(novacron.ETooLarge, "request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return novacron.Errorf(novacron.EInvalid, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return novacron.Errorf(novacron.EInvalid, "malformed JSON: unexpected end of body")
	case errors.As(err, &syn):
		return novacron.Errorf(novacron.EInvalid, "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return novacron.Errorf(novacron.EInvalid, "request body must be a JSON object")
		}
		return novacron.FieldError(field, "must be %s", jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return novacron.FieldError(field, "unknown field")
	default:
		return novacron.Errorf(novacron.EInvalid, "malformed JSON")
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	default:
		return fmt.Sprintf("of type %s", goKind)
	}
}
