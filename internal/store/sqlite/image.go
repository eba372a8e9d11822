package sqlite

import (
	"context"
	"database/sql"
	"errors"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.ImageStore = (*Store)(nil)

const imageSelect = `SELECT id, name, format, size, sha256, tenant_id, public, command, created_at FROM images`

func scanImage(row scanner) (*novacron.Image, error) {
	var img novacron.Image
	var command sql.NullString
	err := row.Scan(&img.ID, &img.Name, &img.Format, &img.Size, &img.SHA256, &img.TenantID, &img.Public,
		&command, timeCol{&img.CreatedAt})
	if err != nil {
		return nil, err
	}
	if command.Valid {
		if img.Command, err = store.DecodeImageCommand([]byte(command.String)); err != nil {
			return nil, err
		}
	}
	return &img, nil
}

// getImage reads the image with the canonical id that the tenant st sees
// (its own and the public ones; every image for "").
func getImage(ctx context.Context, q queryer, id, st string) (*novacron.Image, error) {
	img, err := scanImage(q.QueryRowContext(ctx, imageSelect+` WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2 OR public = 1)`,
		id, nullText(st)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.NotFound("image")
	}
	return img, err
}

// imageBytes sums the sizes of the tenant's images.
func imageBytes(ctx context.Context, q queryer, tenant string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0) FROM images WHERE tenant_id = ?`, tenant).Scan(&n)
	return n, err
}

// CreateImage inserts img within the tenant's images_gb quota and reloads
// it from the row. The single write connection serializes the quota check
// with every other write.
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
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		q, err := quotas(ctx, tx, v.TenantID)
		if novacron.IsCode(err, novacron.ENotFound) {
			return novacron.FieldError("tenant_id", "tenant does not exist")
		}
		if err != nil {
			return err
		}
		used, err := imageBytes(ctx, tx, v.TenantID)
		if err != nil {
			return err
		}
		if err := store.CheckImageQuota(q, used, v.Size); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO images (id, tenant_id, name, format, size, sha256, public, command, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, v.ID, v.TenantID, v.Name, v.Format, v.Size, v.SHA256, v.Public,
			nullJSON(command), timeText(now))
		switch constraint(err) {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return novacron.Errorf(novacron.EConflict, "image id already exists")
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return store.ImageNameTaken(v.Name)
		}
		if isForeignKey(err) {
			return novacron.FieldError("tenant_id", "tenant does not exist")
		}
		if err != nil {
			return err
		}
		got, err = getImage(ctx, tx, v.ID, "")
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
	img, err := getImage(ctx, s.read, id, st)
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
	rows, err := s.read.QueryContext(ctx, imageSelect+`
		WHERE (?1 IS NULL OR tenant_id = ?1 OR public = 1) AND (?2 IS NULL OR format = ?2) AND (?3 IS NULL OR name = ?3)
		  AND id > ?4
		ORDER BY id LIMIT ?5`, nullText(st), nullText(f.Format), nullText(f.Name), after, limit+1)
	if err != nil {
		return nil, "", wrap("list images", err)
	}
	defer rows.Close()
	var imgs []*novacron.Image
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, "", wrap("list images", err)
		}
		imgs = append(imgs, img)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap("list images", err)
	}
	imgs, next := store.NextCursor(imgs, limit, func(i *novacron.Image) string { return i.ID })
	return imgs, next, nil
}

// DeleteImage deletes an image of the scope's tenant that no VM uses.
func (s *Store) DeleteImage(ctx context.Context, scope novacron.Scope, id string) error {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return store.NotFound("image")
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		img, err := getImage(ctx, tx, id, st)
		if err != nil {
			return err
		}
		if st != "" && (img.Public || img.TenantID != st) {
			return store.PublicImage()
		}
		var used bool
		err = tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM vms WHERE image_id = ?1
			OR lower(json_extract(config, '$.kernel_image_id')) = ?1
			OR lower(json_extract(config, '$.initrd_image_id')) = ?1)`, id).Scan(&used)
		if err != nil {
			return err
		}
		if used {
			return store.ImageInUse()
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM images WHERE id = ?`, id)
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
	err := s.read.QueryRowContext(ctx, `SELECT coalesce(sum(i.size), 0) FROM tenants t LEFT JOIN images i ON i.tenant_id = t.id
		WHERE t.id = ? GROUP BY t.id`, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
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
