package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

// ImageInfo is what a node needs to know of an image to fetch and verify it.
type ImageInfo struct {
	ID     string
	Format string
	SHA256 string
	Size   int64
}

// Source gives nodes the content of images. The in-process implementation
// is *Store, which reads the file; a cluster's nodes will fetch over HTTPS.
type Source interface {
	// Open returns the content of the image and what it should be: the
	// caller verifies the size and digest. An image that does not exist is
	// ENotFound.
	Open(ctx context.Context, id string) (io.ReadCloser, ImageInfo, error)
}

// Open returns the file of the image with the given id, whatever its
// tenant: nodes run the guests of every tenant.
func (s *Store) Open(ctx context.Context, id string) (io.ReadCloser, ImageInfo, error) {
	img, err := s.db.GetImage(ctx, novacron.AllTenants, id)
	if err != nil {
		return nil, ImageInfo{}, err
	}
	f, err := os.Open(s.path(img.ID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ImageInfo{}, &novacron.Error{Code: novacron.EUnavailable, Message: "the image's file is missing", Err: err}
	}
	if err != nil {
		return nil, ImageInfo{}, fmt.Errorf("images: %w", err)
	}
	return f, ImageInfo{ID: img.ID, Format: img.Format, SHA256: img.SHA256, Size: img.Size}, nil
}

// Cache is a node's copy of the images it uses, fetched from a Source on
// first use and verified against the digest the Source announces.
type Cache struct {
	dir string
	src Source
	mu  sync.Mutex // one fetch at a time; cached files are read without it
}

// NewCache returns a cache in dir (created 0700) over src.
func NewCache(dir string, src Source) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	for _, p := range stale {
		_ = os.Remove(p)
	}
	return &Cache{dir: dir, src: src}, nil
}

// Path returns the path of the cached file of the image, fetching and
// verifying it first when it is not cached. A fetched file whose size or
// sha256 differs from what the source announced is discarded (EInvalid).
func (c *Cache) Path(ctx context.Context, id string) (string, error) {
	id, ok := store.ParseID(id)
	if !ok {
		return "", store.NotFound("image")
	}
	p := filepath.Join(c.dir, id)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	rc, info, err := c.src.Open(ctx, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	f, err := os.CreateTemp(c.dir, tempPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("images: %w", err)
	}
	tmp := f.Name()
	ok = false
	defer func() {
		f.Close()
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, info.Size+1))
	if err != nil {
		return "", fmt.Errorf("images: fetch %s: %w", id, err)
	}
	if n != info.Size || hex.EncodeToString(h.Sum(nil)) != info.SHA256 {
		return "", novacron.Errorf(novacron.EInvalid, "image %s does not match its size and sha256", id)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("images: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("images: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("images: %w", err)
	}
	ok = true
	return p, syncDir(c.dir)
}
