//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package local

import (
	"io/fs"
	"os"

	"github.com/drflow/drflow/providers"
)

// The store's guarantees rest on flock(2) and link(2); Open refuses other platforms.
const platformSupported = false

func lockFile(*os.File) error { return providers.ErrNotSupported }

func tryLockFile(*os.File) (bool, error) { return false, providers.ErrNotSupported }

func fileID(fs.FileInfo) uint64 { return 0 }
