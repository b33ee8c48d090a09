//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package metrics

import "syscall"

// diskSpace reports the bytes free to unprivileged users and the size of
// the file system holding dir.
func diskSpace(dir string) (free, size uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	return uint64(st.Bavail) * bs, uint64(st.Blocks) * bs, nil
}
