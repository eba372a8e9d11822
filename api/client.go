// Package api is the Go client of the NovaCron REST API and its wire types:
// what the CLI, the tests and other programs use to talk to a control plane.
// Domain nouns (users, tenants, audit entries, VMs, operations) are the root
// package's types; this package adds the request and answer shapes around
// them. A failed call returns an *Error carrying the server's code, message
// and request id; an asynchronous call asked to wait whose operation outlasts
// the wait returns a *StillRunningError (ErrStillRunning).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/novacron/novacron"
)

// DefaultUserAgent is sent when no WithUserAgent option is given.
const DefaultUserAgent = "novacron-api-client"

// Client calls one NovaCron server. It is safe for concurrent use; its
// settings do not change after New.
type Client struct {
	baseURL   string
	token     string
	hc        *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithToken authenticates every request with the bearer token (a session
// token from Login or a personal API token).
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sends requests through hc instead of http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the server at baseURL ("http://127.0.0.1:8090"; a
// path prefix is kept, a trailing slash dropped).
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		baseURL:   strings.TrimRight(baseURL, "/"),
		hc:        http.DefaultClient,
		userAgent: DefaultUserAgent,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the server's address as given to New, without a trailing
// slash.
func (c *Client) BaseURL() string { return c.baseURL }

// WithToken returns a copy of c that authenticates with token, as after a
// Login.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

// Do sends one request and decodes the answer. path is the URL path below
// the base URL ("/api/users"); query may be nil; in, when not nil, is
// encoded as the JSON body; out, when not nil, receives the decoded JSON
// answer (a 204 leaves it untouched). Answers of 400 and above are returned
// as *Error. Do serves endpoints that have no method here yet.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.send(ctx, method, path, query, in, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return decodeError(resp, body)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: %s %s: decode answer: %w", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// send sends one request whose body, when in is not nil, is in encoded as
// JSON, asking for an answer of the media type accept.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any, accept string) (*http.Response, error) {
	var body io.Reader
	size := int64(0)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("api: %s %s: encode body: %w", method, path, err)
		}
		body, size = bytes.NewReader(b), int64(len(b))
	}
	return c.sendBody(ctx, method, path, query, body, "application/json", size, accept)
}

// sendBody sends one request with body (none for nil) of the media type
// contentType and size bytes (-1 when unknown), streamed as it is read.
func (c *Client) sendBody(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string,
	size int64, accept string) (*http.Response, error) {
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
		if size >= 0 {
			req.ContentLength = size
		}
	}
	req.Header.Set("Accept", accept)
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The *url.Error already names the method and URL.
		return nil, fmt.Errorf("api: %w", err)
	}
	return resp, nil
}

// ListAll follows the cursors of a list until its last page and returns
// every item. fetch gets one page starting at cursor ("" for the first), for
// example:
//
//	users, err := api.ListAll(ctx, func(ctx context.Context, cursor string) (*api.List[novacron.User], error) {
//		return c.ListUsers(ctx, api.UserFilter{Role: novacron.RoleAdmin, Cursor: cursor})
//	})
func ListAll[T any](ctx context.Context, fetch func(ctx context.Context, cursor string) (*List[T], error)) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	cursor := ""
	for {
		page, err := fetch(ctx, cursor)
		if err != nil {
			return all, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		if seen[page.NextCursor] {
			return all, errors.New("api: list: the server repeated cursor " + page.NextCursor)
		}
		seen[page.NextCursor] = true
		cursor = page.NextCursor
	}
}

// pathf builds a URL path, escaping each argument as one path segment.
func pathf(format string, ids ...string) string {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = url.PathEscape(id)
	}
	return fmt.Sprintf(format, args...)
}

// pageQuery returns the query of one page, adding the non-empty filters
// given as name, value pairs.
func pageQuery(limit int, cursor string, filters ...string) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	for i := 0; i+1 < len(filters); i += 2 {
		if filters[i+1] != "" {
			q.Set(filters[i], filters[i+1])
		}
	}
	return q
}

// requireID refuses an empty id, which would address the collection instead
// of one of its members.
func requireID(what, id string) error {
	if id == "" {
		return &Error{Code: novacron.EInvalid, Message: what + " id is empty"}
	}
	return nil
}
