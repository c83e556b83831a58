//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package keys

import (
	"os"

	"github.com/drflow/drflow/providers"
)

// The keyring's atomic updates rest on flock(2); OpenKeyring refuses other platforms.
const lockingSupported = false

func lockFile(*os.File) error { return providers.ErrNotSupported }
