package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

func newImageCmd(e *env) *cobra.Command {
	return addClientFlags(newGroupCmd("image", "Upload and manage images: disks, kernels, initrds, root file systems",
		newImageUploadCmd(e),
		newImageListCmd(e),
		newImageShowCmd(e),
		newImageDeleteCmd(e),
	))
}

// resolveImage finds an image by id or name, as resolveVM finds a VM. The
// caller sees its tenant's images and the public ones, so one name may
// match several: then the id is needed.
func resolveImage(ctx context.Context, c *api.Client, nameOrID string) (*novacron.Image, error) {
	looksLikeID := isUUID(nameOrID)
	if looksLikeID {
		img, err := c.GetImage(ctx, nameOrID)
		if !api.IsCode(err, novacron.ENotFound) {
			return img, err
		}
	}
	imgs, err := api.ListAll(ctx, func(ctx context.Context, cursor string) (*api.List[novacron.Image], error) {
		return c.ListImages(ctx, api.ImageFilter{Name: nameOrID, Cursor: cursor})
	})
	if err != nil {
		return nil, err
	}
	imgs = slices.DeleteFunc(imgs, func(i novacron.Image) bool { return i.Name != nameOrID })
	switch len(imgs) {
	case 0:
		msg := fmt.Sprintf("no image named %q", nameOrID)
		if looksLikeID {
			msg = fmt.Sprintf("no image named or with id %q", nameOrID)
		}
		return nil, &api.Error{Code: novacron.ENotFound, Message: msg}
	case 1:
		return &imgs[0], nil
	}
	ids := make([]string, len(imgs))
	for i, img := range imgs {
		ids[i] = fmt.Sprintf("%s (tenant %s)", img.ID, img.TenantID)
	}
	return nil, fmt.Errorf("%d images are named %q; give the id of one: %s", len(imgs), nameOrID, strings.Join(ids, ", "))
}

var imageHeader = []string{"ID", "NAME", "FORMAT", "SIZE", "PUBLIC", "CREATED"}

func imageRow(i novacron.Image) []string {
	return []string{i.ID, i.Name, i.Format, fmtBytes(i.Size), strconv.FormatBool(i.Public), fmtTime(i.CreatedAt)}
}

// fmtBytes shows a size in binary units.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func printImage(cmd *cobra.Command, e *env, i *novacron.Image) error {
	if outputJSON(cmd) {
		return writeJSON(e.stdout, i)
	}
	kv := []string{
		"ID", i.ID,
		"Name", i.Name,
		"Format", i.Format,
		"Size", fmt.Sprintf("%s (%d bytes)", fmtBytes(i.Size), i.Size),
		"SHA-256", i.SHA256,
		"Tenant", i.TenantID,
		"Public", strconv.FormatBool(i.Public),
	}
	if i.Command != nil {
		// As JSON: unambiguous, and control characters escaped.
		b, err := json.Marshal(i.Command)
		if err != nil {
			return err
		}
		kv = append(kv, "Command", string(b))
	}
	return fields(e.stdout, append(kv, "Created", fmtTime(i.CreatedAt))...)
}

// parseImageCommand reads --command: a JSON array of strings.
func parseImageCommand(s string) ([]string, error) {
	var cmd []string
	dec := json.NewDecoder(strings.NewReader(s))
	err := dec.Decode(&cmd)
	if err == nil && cmd != nil {
		if _, err = dec.Token(); err == io.EOF {
			return cmd, nil
		}
	}
	return nil, errors.New(`--command must be a JSON array of strings, like '["/bin/sh","-c","echo hi"]'`)
}

func newImageUploadCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload an image file",
		Long: `Upload an image file, streamed. The server checks it against its format:
qcow2 (no backing file or external data file) and raw disks through qemu-img,
kernel (a bzImage), initrd (a compressed or cpio archive), rootfs (a tar
archive, plain or compressed with gzip or zstd, checked entry by entry: no
device nodes, no names or links leaving the root). --public (admins) makes
it visible to every tenant. --command gives a rootfs image its default
command, as a JSON array: a container VM that names no command runs it.`,
		Example: `  novacron image upload debian-12.qcow2 --name debian-12 --format qcow2
  novacron image upload busybox.tar.zst --name busybox --format rootfs --command '["/bin/sh","-c","echo hi"]'`,
		Args: cobra.ExactArgs(1),
	}
	name := cmd.Flags().String("name", "", "the image's name (default: the file's base name)")
	format := newEnumValue("", novacron.ImageFormats...)
	cmd.Flags().Var(format, "format", "one of "+strings.Join(novacron.ImageFormats, ", ")+" (required: never guessed)")
	_ = cmd.MarkFlagRequired("format")
	public := cmd.Flags().Bool("public", false, "visible to every tenant (admins only)")
	command := cmd.Flags().String("command", "", `a rootfs image's default command, a JSON array: '["/bin/sh","-c","echo hi"]'`)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts := api.UploadOptions{Public: *public}
		if cmd.Flags().Changed("command") {
			var err error
			if opts.Command, err = parseImageCommand(*command); err != nil {
				return asUsage(err)
			}
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		size := int64(-1)
		if fi.Mode().IsRegular() {
			size = fi.Size()
		}
		n := *name
		if n == "" {
			n = fi.Name()
		}
		img, err := c.UploadImage(cmd.Context(), n, format.value, f, size, opts)
		if err != nil {
			return err
		}
		return printImage(cmd, e, img)
	}
	return cmd
}

func newImageListCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List images: your tenant's and the public ones",
		Args:    cobra.NoArgs,
	}
	addListFlags(cmd)
	format := newEnumValue("", novacron.ImageFormats...)
	cmd.Flags().Var(format, "format", "only images of this format")
	name := cmd.Flags().String("name", "", "only images of this name")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		l, err := listPages(cmd, func(ctx context.Context, limit int, cursor string) (*api.List[novacron.Image], error) {
			return c.ListImages(ctx, api.ImageFilter{Format: format.value, Name: *name, Limit: limit, Cursor: cursor})
		})
		if err != nil {
			return err
		}
		return printList(cmd, e, l, imageHeader, imageRow)
	}
	return cmd
}

func newImageShowCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show IMAGE",
		Short: "Show an image, by name or id",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		img, err := resolveImage(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		return printImage(cmd, e, img)
	}
	return cmd
}

func newImageDeleteCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete IMAGE",
		Aliases: []string{"rm"},
		Short:   "Delete an image that no VM uses, by name or id",
		Args:    cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		img, err := resolveImage(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if err := c.DeleteImage(cmd.Context(), img.ID); err != nil {
			return err
		}
		return printDone(cmd, e, img, "Deleted image %s (%s).", img.Name, img.ID)
	}
	return cmd
}
