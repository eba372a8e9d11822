package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/nodeclient"
)

// ImageSource gives the agent the bytes of an image it has not cached yet:
// in the all-in-one server, the server's image store itself.
type ImageSource interface {
	Open(ctx context.Context, id string) (io.ReadCloser, error)
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// image returns the cached file of an image, fetching it from the source and
// checking its sha256 on first use. Files are named by their hash, so one
// copy serves every guest and a tampered copy is never used.
func (a *Agent) image(ctx context.Context, ref *nodeclient.ImageRef) (string, error) {
	if ref == nil {
		return "", nil
	}
	if !sha256RE.MatchString(ref.SHA256) {
		return "", fmt.Errorf("agent: image %s has no valid sha256", ref.ID)
	}
	dir := filepath.Join(a.cfg.Dir, "images")
	path := filepath.Join(dir, ref.SHA256)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if a.cfg.Images == nil {
		return "", novacron.Errorf(novacron.EInvalid, "node %s has no image source", a.cfg.NodeName)
	}
	a.imageMu.Lock()
	defer a.imageMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	src, err := a.cfg.Images.Open(ctx, ref.ID)
	if err != nil {
		return "", fmt.Errorf("agent: fetch image %s: %w", ref.ID, err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("agent: fetch image %s: %w", ref.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		return "", fmt.Errorf("agent: image %s: sha256 %s, want %s", ref.ID, got, ref.SHA256)
	}
	// Guests read images under their own uids.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	a.log.Info("image cached", "image", ref.ID, "sha256", ref.SHA256)
	return path, nil
}

// resolveImages fills a spec's file fields from its images.
func (a *Agent) resolveImages(ctx context.Context, spec *nodeclient.GuestSpec) error {
	var err error
	if spec.BaseImage, err = a.image(ctx, spec.Images.Base); err != nil {
		return err
	}
	if spec.Images.Base != nil {
		spec.BaseImageFormat = spec.Images.Base.Format
		spec.ImageCommand = spec.Images.Base.Command
	}
	if spec.Kernel, err = a.image(ctx, spec.Images.Kernel); err != nil {
		return err
	}
	if spec.Initrd, err = a.image(ctx, spec.Images.Initrd); err != nil {
		return err
	}
	return nil
}
