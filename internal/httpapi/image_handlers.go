package httpapi

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/images"
)

// uploadLimit is the body limit of an image upload: the image store's
// size limit, which the store enforces too.
func (a *API) uploadLimit() int64 {
	if a.cfg.Images == nil {
		return images.DefaultMaxSize
	}
	return a.cfg.Images.MaxSize()
}

func (a *API) imageStore() (*images.Store, error) {
	if a.cfg.Images == nil {
		return nil, novacron.Errorf(novacron.EUnavailable, "this server keeps no images")
	}
	return a.cfg.Images, nil
}

// boolParam reads an optional boolean query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, novacron.FieldError(name, "must be true or false")
	}
	return v, nil
}

// commandParam reads the optional ?command= of an upload: a JSON array of
// strings, nil when absent. The image store checks what it holds.
func commandParam(r *http.Request) ([]string, error) {
	q := r.URL.Query()
	if !q.Has("command") {
		return nil, nil
	}
	if len(q["command"]) > 1 {
		return nil, novacron.FieldError("command", "must be given once")
	}
	raw := q.Get("command")
	if len(raw) > maxCommandParam {
		return nil, novacron.FieldError("command", "must be at most %d bytes of JSON", maxCommandParam)
	}
	var cmd []string
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&cmd); err != nil || cmd == nil {
		return nil, novacron.FieldError("command", `must be a JSON array of strings, like ["/bin/sh","-c","echo hi"]`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, novacron.FieldError("command", "must be one JSON array, nothing after it")
	}
	return cmd, nil
}

// maxCommandParam bounds the JSON of ?command=: the command's own limit,
// with room for quoting and escapes.
const maxCommandParam = 4 * novacron.MaxImageCommandBytes

// uploadImage streams the body into a new image of the caller's tenant.
func (a *API) uploadImage(r *http.Request) (any, error) {
	is, err := a.imageStore()
	if err != nil {
		return nil, err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/octet-stream" {
			return nil, novacron.Errorf(novacron.EInvalid, "Content-Type must be application/octet-stream")
		}
	}
	public, err := boolParam(r, "public")
	if err != nil {
		return nil, err
	}
	st := stateOf(r)
	if public && st.actor.Role != novacron.RoleAdmin {
		return nil, novacron.Errorf(novacron.EForbidden, "only admins may upload public images")
	}
	q := r.URL.Query()
	command, err := commandParam(r)
	if err != nil {
		return nil, err
	}
	img, err := is.Upload(r.Context(), images.UploadRequest{Name: q.Get("name"), Format: q.Get("format"),
		TenantID: st.actor.TenantID, Public: public, Command: command, Size: r.ContentLength}, r.Body)
	if err != nil {
		return nil, err
	}
	st.resourceID = img.ID
	return created(img), nil
}

func (a *API) listImages(r *http.Request) (any, error) {
	is, err := a.imageStore()
	if err != nil {
		return nil, err
	}
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	imgs, next, err := is.List(r.Context(), auth.ScopeOf(stateOf(r).actor),
		novacron.ImageFilter{Page: page, Format: q.Get("format"), Name: q.Get("name")})
	if err != nil {
		return nil, err
	}
	return newList(imgs, next), nil
}

func (a *API) getImage(r *http.Request) (any, error) {
	is, err := a.imageStore()
	if err != nil {
		return nil, err
	}
	return is.Get(r.Context(), auth.ScopeOf(stateOf(r).actor), r.PathValue("id"))
}

func (a *API) deleteImage(r *http.Request) (any, error) {
	is, err := a.imageStore()
	if err != nil {
		return nil, err
	}
	if err := is.Delete(r.Context(), auth.ScopeOf(stateOf(r).actor), r.PathValue("id")); err != nil {
		return nil, err
	}
	return noContent(), nil
}
