package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mountFlags keep the image's setuid files and any device node from
// mattering on a container's root, on top of the guest's no_new_privs.
const mountFlags = unix.MS_NOSUID | unix.MS_NODEV

// mountOverlay mounts at target an overlay of the read-only lower directory
// (an unpacked image, shared) under the writable upper directory (the
// guest's own), with work as overlayfs's scratch directory on upper's file
// system. The overlay's root takes its mode and owner from upper, so upper's
// are first set to lower's: the container's "/" is the image's. On a target
// that already holds an overlay mount it is a no-op, so a repeated Create
// does not stack mounts. Paths with ',', ':', '\' or a
// newline are refused: they would need escaping in overlayfs's options.
func mountOverlay(lower, upper, work, target string) error {
	for _, p := range []string{lower, upper, work, target} {
		if !filepath.IsAbs(p) || strings.ContainsAny(p, ",:\\\n\x00") {
			return fmt.Errorf("overlay: path %q must be absolute, without ',', ':', '\\' or a newline", p)
		}
	}
	if mounted, err := isOverlayMount(target); err != nil {
		return err
	} else if mounted {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(lower, &st); err != nil {
		return fmt.Errorf("overlay: lower: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("overlay: lower %s is not a directory", lower)
	}
	if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("overlay: upper: %w", err)
	}
	if err := unix.Chmod(upper, st.Mode&0o7777); err != nil {
		return fmt.Errorf("overlay: upper: %w", err)
	}
	data := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", target, "overlay", mountFlags, data); err != nil {
		return fmt.Errorf("overlay: mount %s: %w", target, err)
	}
	return nil
}

// unmountOverlay unmounts the overlay at target. A target that is not
// mounted, or does not exist, is fine.
func unmountOverlay(target string) error {
	// A mount stacked by an older agent's repeated mounts comes off too.
	for range 8 {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more), or no target at all
		default:
			return fmt.Errorf("overlay: unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("overlay: unmount %s: still mounted after 8 unmounts", target)
}

// isOverlayMount reports whether target is the root of an overlay mount: an
// overlay file system on another device than target's parent directory.
func isOverlayMount(target string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(target, &fs); err != nil {
		return false, fmt.Errorf("overlay: target: %w", err)
	}
	if fs.Type != unix.OVERLAYFS_SUPER_MAGIC {
		return false, nil
	}
	var t, p unix.Stat_t
	if err := unix.Lstat(target, &t); err != nil {
		return false, fmt.Errorf("overlay: target: %w", err)
	}
	if err := unix.Stat(filepath.Dir(target), &p); err != nil {
		return false, fmt.Errorf("overlay: target: %w", err)
	}
	return t.Dev != p.Dev, nil
}
