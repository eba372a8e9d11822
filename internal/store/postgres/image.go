package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.ImageStore = (*Store)(nil)

const imageSelect = `SELECT id, name, format, size, sha256, tenant_id, public, command, created_at FROM images`

func scanImage(row pgx.Row) (*novacron.Image, error) {
	var img novacron.Image
	var command []byte
	err := row.Scan(&img.ID, &img.Name, &img.Format, &img.Size, &img.SHA256, &img.TenantID, &img.Public, &command,
		&img.CreatedAt)
	if err != nil {
		return nil, err
	}
	if img.Command, err = store.DecodeImageCommand(command); err != nil {
		return nil, err
	}
	return &img, nil
}

// getImage reads the image with the canonical id that the tenant st sees
// (its own and the public ones; every image for ""), locked FOR UPDATE
// when lock is set.
func getImage(ctx context.Context, q queryer, id, st string, lock bool) (*novacron.Image, error) {
	sql := imageSelect + ` WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2 OR public)`
	if lock {
		sql += ` FOR UPDATE`
	}
	img, err := scanImage(q.QueryRow(ctx, sql, id, null(st)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("image")
	}
	return img, err
}

// CreateImage inserts img within the tenant's images_gb quota and reloads
// it from the row. The tenant's row stays locked until the commit, so that
// the quota checks of one tenant take turns (see lockQuotas).
func (s *Store) CreateImage(ctx context.Context, img *novacron.Image) error {
	v, err := store.PrepareImage(img)
	if err != nil {
		return err
	}
	command, err := store.EncodeImageCommand(v.Command)
	if err != nil {
		return err
	}
	now := store.Time(s.now())
	var got *novacron.Image
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuotas(ctx, tx, v.TenantID)
		if novacron.IsCode(err, novacron.ENotFound) {
			return novacron.FieldError("tenant_id", "tenant does not exist")
		}
		if err != nil {
			return err
		}
		var used int64
		err = tx.QueryRow(ctx, `SELECT coalesce(sum(size), 0)::bigint FROM images WHERE tenant_id = $1`, v.TenantID).Scan(&used)
		if err != nil {
			return err
		}
		if err := store.CheckImageQuota(q, used, v.Size); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO images (id, tenant_id, name, format, size, sha256, public, command, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)`, v.ID, v.TenantID, v.Name, v.Format, v.Size, v.SHA256, v.Public,
			nullJSON(command), now)
		if e, ok := pgError(err); ok && e.Code == "23505" {
			if strings.HasSuffix(e.ConstraintName, "_pkey") {
				return novacron.Errorf(novacron.EConflict, "image id already exists")
			}
			return store.ImageNameTaken(v.Name)
		}
		if isForeignKey(err) {
			return novacron.FieldError("tenant_id", "tenant does not exist")
		}
		if err != nil {
			return err
		}
		got, err = getImage(ctx, tx, v.ID, "", false)
		return err
	})
	if err != nil {
		return wrap("create image", err)
	}
	*img = *got
	return nil
}

// GetImage returns the image with the given id within scope, or a public one.
func (s *Store) GetImage(ctx context.Context, scope novacron.Scope, id string) (*novacron.Image, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("image")
	}
	img, err := getImage(ctx, s.pool, id, st, false)
	return img, wrap("get image", err)
}

// ListImages lists the images within scope and the public ones that match
// f, in id (creation) order.
func (s *Store) ListImages(ctx context.Context, scope novacron.Scope, f novacron.ImageFilter) ([]*novacron.Image, string, error) {
	limit := store.Limit(f.Page)
	after, err := store.DecodeCursor(f.Cursor, store.MinID)
	if err != nil {
		return nil, "", err
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	rows, err := s.pool.Query(ctx, imageSelect+`
		WHERE ($1::uuid IS NULL OR tenant_id = $1 OR public) AND ($2::text IS NULL OR format = $2)
		  AND ($3::text IS NULL OR name = $3) AND id > $4
		ORDER BY id LIMIT $5`, null(st), null(f.Format), null(f.Name), after, limit+1)
	if err != nil {
		return nil, "", wrap("list images", err)
	}
	imgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*novacron.Image, error) { return scanImage(r) })
	if err != nil {
		return nil, "", wrap("list images", err)
	}
	imgs, next := store.NextCursor(imgs, limit, func(i *novacron.Image) string { return i.ID })
	return imgs, next, nil
}

// DeleteImage deletes an image of the scope's tenant that no VM uses. The
// image's row is locked FOR UPDATE first: inserting a VM whose image_id
// refers to it takes a key share lock on it and so waits (or makes the
// delete wait), and whoever records a kernel or initrd image in a VM's
// config must take the same lock (SELECT … FOR KEY SHARE) for the check
// below to hold.
func (s *Store) DeleteImage(ctx context.Context, scope novacron.Scope, id string) error {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return store.NotFound("image")
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		img, err := getImage(ctx, tx, id, st, true)
		if err != nil {
			return err
		}
		if st != "" && (img.Public || img.TenantID != st) {
			return store.PublicImage()
		}
		var used bool
		err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM vms WHERE image_id = $1::uuid
			OR lower(config->>'kernel_image_id') = $2::text OR lower(config->>'initrd_image_id') = $2::text)`, id, id).Scan(&used)
		if err != nil {
			return err
		}
		if used {
			return store.ImageInUse()
		}
		_, err = tx.Exec(ctx, `DELETE FROM images WHERE id = $1`, id)
		if isForeignKey(err) {
			return store.ImageInUse()
		}
		return err
	})
	return wrap("delete image", err)
}

// TenantImageBytes sums the sizes of the tenant's images.
func (s *Store) TenantImageBytes(ctx context.Context, tenantID string) (int64, error) {
	id, ok := store.ParseID(tenantID)
	if !ok {
		return 0, store.NotFound("tenant")
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(i.size), 0)::bigint FROM tenants t LEFT JOIN images i ON i.tenant_id = t.id
		WHERE t.id = $1 GROUP BY t.id`, id).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, store.NotFound("tenant")
	}
	return n, wrap("tenant image bytes", err)
}

// nullJSON passes the value of a nullable JSON column: NULL for nil.
func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
