package main

import (
	"os"
	"syscall"
	"unsafe"
)

// isInteractive reports whether r is a terminal someone can answer a
// question on. Unlike isTerminal it is false for /dev/null (a character
// device too), which is where a script's or a service's standard input
// often points.
func isInteractive(r any) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	tty := false
	sc.Control(func(fd uintptr) {
		var t syscall.Termios
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
		tty = e == 0
	})
	return tty
}
