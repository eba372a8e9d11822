package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/novacron/novacron"
)

// ImageFilter selects images in ListImages. Empty fields do not filter.
type ImageFilter struct {
	Format string
	Name   string
	Limit  int
	Cursor string
}

// UploadOptions are the optional parts of an upload.
type UploadOptions struct {
	// Public makes the image visible to every tenant (admins only).
	Public bool
	// Command is the default command of a rootfs image, which a container
	// VM that names no command runs: the program (an absolute path inside
	// the image) and its arguments. Nil for none.
	Command []string
}

// UploadImage streams r, of size bytes (-1 when unknown: the body is then
// sent chunked), as a new image of the caller's tenant. The server checks
// the content against format; a refused upload leaves nothing behind.
func (c *Client) UploadImage(ctx context.Context, name, format string, r io.Reader, size int64, opts ...UploadOptions) (*novacron.Image, error) {
	q := url.Values{"name": {name}, "format": {format}}
	for _, o := range opts {
		if o.Public {
			q.Set("public", "true")
		}
		if o.Command != nil {
			b, err := json.Marshal(o.Command)
			if err != nil {
				return nil, fmt.Errorf("api: upload image: %w", err)
			}
			q.Set("command", string(b))
		}
	}
	if size == 0 {
		// A zero ContentLength with a body would be sent as unknown.
		r = http.NoBody
	}
	resp, err := c.sendBody(ctx, http.MethodPost, "/api/images", q, io.NopCloser(r), "application/octet-stream", size,
		"application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, decodeError(resp, body)
	}
	var out novacron.Image
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("api: upload image: decode answer: %w", err)
	}
	return &out, nil
}

// ListImages lists one page of the images the caller can see: its
// tenant's and the public ones.
func (c *Client) ListImages(ctx context.Context, f ImageFilter) (*List[novacron.Image], error) {
	var out List[novacron.Image]
	q := pageQuery(f.Limit, f.Cursor, "format", f.Format, "name", f.Name)
	if err := c.Do(ctx, http.MethodGet, "/api/images", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetImage returns one image by id.
func (c *Client) GetImage(ctx context.Context, id string) (*novacron.Image, error) {
	if err := requireID("image", id); err != nil {
		return nil, err
	}
	var out novacron.Image
	if err := c.Do(ctx, http.MethodGet, pathf("/api/images/%s", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteImage deletes an image; one a VM uses is a conflict.
func (c *Client) DeleteImage(ctx context.Context, id string) error {
	if err := requireID("image", id); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, pathf("/api/images/%s", id), nil, nil, nil)
}
