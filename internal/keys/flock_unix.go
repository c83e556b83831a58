//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package keys

import (
	"os"
	"syscall"
)

const lockingSupported = true

// lockFile takes an exclusive flock on f, waiting for it. flock locks belong to the open file
// description, so two opens of one lock file exclude each other within a process as well as
// across processes.
func lockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}
