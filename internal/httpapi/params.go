package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/novacron/novacron"
)

// pageOf reads ?limit= and ?cursor=.
func pageOf(r *http.Request) (novacron.Page, error) {
	q := r.URL.Query()
	p := novacron.Page{Limit: 50, Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return p, novacron.FieldError("limit", "must be an integer between 1 and 500")
		}
		p.Limit = n
	}
	if len(p.Cursor) > 256 {
		return p, novacron.FieldError("cursor", "is not a cursor of this list")
	}
	return p, nil
}

// timeParam reads an RFC 3339 time or a duration relative to now ("-1h").
func timeParam(r *http.Request, name string, now time.Time) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).UTC(), nil
	}
	return time.Time{}, novacron.FieldError(name, "must be an RFC 3339 time or a relative duration like -1h")
}

// durationParam reads a Go duration string from a request field.
func durationParam(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, novacron.FieldError(field, "must be a duration like \"720h\"")
	}
	return d, nil
}
