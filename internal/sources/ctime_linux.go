package sources

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime returns fi's ctime, or zero if fi does not come from the operating system.
func changeTime(fi fs.FileInfo) time.Time {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
}
