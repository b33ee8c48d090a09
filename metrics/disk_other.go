//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package metrics

import "errors"

func diskSpace(dir string) (free, size uint64, err error) {
	return 0, 0, errors.New("free disk space is not known on this system")
}
