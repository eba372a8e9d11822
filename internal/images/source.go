package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/novacron/novacron"
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
