package azblob

import "time"

// SetClock makes s read now instead of the real clock (for azbtest.Server.Advance).
func SetClock(s *Store, now func() time.Time) { s.now = now }
