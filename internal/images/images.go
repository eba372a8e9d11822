// Package images keeps the files of uploaded images: it streams an upload
// to disk under the tenant's quota and the size limit, hashes it, checks
// that the file is what its declared format says (qemu-img runs under
// resource limits, with the format stated, never guessed; a rootfs
// tarball is checked entry by entry as it streams), and serves the files
// to nodes through Source.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

// DefaultMaxSize is the largest upload that Config.MaxSize 0 allows: 20 GiB.
const DefaultMaxSize int64 = 20 << 30

// DB is what the image store needs of the database.
type DB interface {
	novacron.ImageStore
	GetTenant(ctx context.Context, scope novacron.Scope, id string) (*novacron.Tenant, error)
}

// Config configures a Store.
type Config struct {
	// Dir holds the files, one per image named by its id (DATA/images).
	Dir string
	// MaxSize bounds an upload in bytes (DefaultMaxSize for 0).
	MaxSize int64
	// Inspect bounds qemu-img (the zero value: DefaultInspect).
	Inspect InspectLimits
	// Rootfs bounds the check of rootfs tarballs (the zero value: the
	// defaults, MaxUnpacked 8 times MaxSize up to 64 GiB).
	Rootfs RootfsLimits
	Logger *slog.Logger
}

// Store keeps image files beside their rows in the database. It is safe
// for concurrent use.
type Store struct {
	cfg Config
	db  DB
	log *slog.Logger
}

var _ Source = (*Store)(nil)

// tempPrefix starts the names of uploads in progress.
const tempPrefix = ".upload-"

// New returns a store over dir, creating it (0700) and removing what
// uploads interrupted by a crash left behind.
func New(cfg Config, db DB) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("images: no directory")
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	cfg.Inspect = cfg.Inspect.withDefaults()
	cfg.Rootfs = cfg.Rootfs.withDefaults(cfg.MaxSize)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(cfg.Dir, tempPrefix+"*"))
	for _, p := range stale {
		_ = os.Remove(p)
	}
	return &Store{cfg: cfg, db: db, log: cfg.Logger}, nil
}

// MaxSize is the largest upload the store accepts, in bytes.
func (s *Store) MaxSize() int64 { return s.cfg.MaxSize }

// path is the file of the image with the canonical id.
func (s *Store) path(id string) string { return filepath.Join(s.cfg.Dir, id) }

// UploadRequest describes an upload.
type UploadRequest struct {
	Name     string
	Format   string
	TenantID string
	Public   bool
	// Command is the default command of a rootfs image (nil for none;
	// see novacron.ValidateImageCommand).
	Command []string
	// Size is the announced length of the body, -1 when unknown: a body
	// known to be too large is refused before a byte is read.
	Size int64
}

// Upload streams body into a new image of the tenant and records it. The
// file is written to a temporary file beside the others, within the size
// limit (ETooLarge) and the tenant's images_gb quota (EQuotaExceeded),
// hashed on the way, synced, checked against its format (EInvalid) and
// renamed into place; on any failure nothing is left behind. A rootfs
// tarball is checked entry by entry as it arrives (CheckRootfs), so a bad
// entry ends the upload there.
func (s *Store) Upload(ctx context.Context, req UploadRequest, body io.Reader) (_ *novacron.Image, err error) {
	if err := store.ValidImageName(req.Name); err != nil {
		return nil, err
	}
	if !novacron.ValidImageFormat(req.Format) {
		return nil, novacron.FieldError("format", "must be one of %s", strings.Join(novacron.ImageFormats, ", "))
	}
	if err := novacron.ValidateImageCommand(req.Format, req.Command); err != nil {
		return nil, err
	}
	tenant, err := s.db.GetTenant(ctx, novacron.AllTenants, req.TenantID)
	if err != nil {
		return nil, err
	}
	// room is how many bytes the upload may hold: the smaller of the size
	// limit and what the quota leaves.
	room := s.cfg.MaxSize
	quotaLeft := int64(-1)
	if q := tenant.Quotas.ImagesGB; q != nil {
		used, err := s.db.TenantImageBytes(ctx, tenant.ID)
		if err != nil {
			return nil, err
		}
		quotaLeft = max(0, *q<<30-used)
		room = min(room, quotaLeft)
	}
	tooLarge := func(n int64) error {
		if n > s.cfg.MaxSize {
			return novacron.Errorf(novacron.ETooLarge, "image exceeds the size limit of %d bytes", s.cfg.MaxSize)
		}
		used := *tenant.Quotas.ImagesGB<<30 - quotaLeft
		return store.CheckImageQuota(tenant.Quotas, used, n)
	}
	if req.Size > room {
		return nil, tooLarge(req.Size)
	}

	f, err := os.CreateTemp(s.cfg.Dir, tempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	dst := io.MultiWriter(f, h)
	var check *streamCheck
	if req.Format == novacron.ImageRootfs {
		check = startCheck(ctx, func(ctx context.Context, r io.Reader) error { return CheckRootfs(ctx, r, s.cfg.Rootfs) })
		defer check.abort()
		dst = io.MultiWriter(f, h, check)
	}
	n, err := io.Copy(dst, io.LimitReader(body, room+1))
	var mbe *http.MaxBytesError
	var refused *checkRefused
	switch {
	case errors.As(err, &refused):
		return nil, refused.err
	case errors.As(err, &mbe):
		return nil, novacron.Errorf(novacron.ETooLarge, "image exceeds the size limit of %d bytes", mbe.Limit)
	case err != nil:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &novacron.Error{Code: novacron.EInvalid, Message: "reading the upload failed", Err: err}
	case n > room:
		return nil, tooLarge(n)
	case n == 0:
		return nil, novacron.Errorf(novacron.EInvalid, "the image is empty")
	case req.Size >= 0 && n != req.Size:
		return nil, novacron.Errorf(novacron.EInvalid, "the body has %d bytes, %d announced", n, req.Size)
	}
	if check != nil {
		if err := check.wait(); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("images: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("images: close: %w", err)
	}
	f = nil
	if check == nil {
		if err := Validate(ctx, tmp, req.Format, s.cfg.Inspect); err != nil {
			return nil, err
		}
	}
	id, err := store.NewID()
	if err != nil {
		return nil, err
	}
	final := s.path(id)
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	tmp = final // removed on failure from here on
	if err := syncDir(s.cfg.Dir); err != nil {
		return nil, err
	}
	img := &novacron.Image{ID: id, Name: req.Name, Format: req.Format, Size: n,
		SHA256: hex.EncodeToString(h.Sum(nil)), TenantID: tenant.ID, Public: req.Public, Command: req.Command}
	// The quota is checked again in the insert's transaction: another
	// upload of the tenant may have finished meanwhile.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.db.CreateImage(cctx, img); err != nil {
		return nil, err
	}
	s.log.Info("image uploaded", "image_id", img.ID, "tenant_id", img.TenantID, "format", img.Format, "size", img.Size)
	return img, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("images: sync %s: %w", dir, err)
	}
	return nil
}

// Get returns an image of the scope's tenant or a public one.
func (s *Store) Get(ctx context.Context, scope novacron.Scope, id string) (*novacron.Image, error) {
	return s.db.GetImage(ctx, scope, id)
}

// List lists the images of the scope's tenant and the public ones.
func (s *Store) List(ctx context.Context, scope novacron.Scope, f novacron.ImageFilter) ([]*novacron.Image, string, error) {
	if f.Format != "" && !novacron.ValidImageFormat(f.Format) {
		return nil, "", novacron.FieldError("format", "must be one of %s", strings.Join(novacron.ImageFormats, ", "))
	}
	return s.db.ListImages(ctx, scope, f)
}

// Delete deletes an image that no VM uses (EConflict) and then its file. A
// public image is EForbidden to a tenant's scope.
func (s *Store) Delete(ctx context.Context, scope novacron.Scope, id string) error {
	img, err := s.db.GetImage(ctx, scope, id)
	if err != nil {
		return err
	}
	if err := s.db.DeleteImage(ctx, scope, img.ID); err != nil {
		return err
	}
	if err := os.Remove(s.path(img.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("image file left behind", "image_id", img.ID, "err", err)
	}
	return nil
}
