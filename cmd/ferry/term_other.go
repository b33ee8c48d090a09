//go:build !linux

package main

import "os"

// isInteractive reports whether r is a terminal someone can answer a
// question on: a character device other than /dev/null, which is where a
// script's or a service's standard input often points.
func isInteractive(r any) bool {
	f, ok := r.(*os.File)
	if !ok || !isTerminal(f) {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && !os.SameFile(fi, null)
}
