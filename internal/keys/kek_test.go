package keys

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestDEKAADRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		dataset string
		epoch   uint32
	}{{"payroll", 1}, {"a", 4294967295}, {"with\x00nul", 7}} {
		d, e, ok := parseDEKAAD(dekAAD(tt.dataset, tt.epoch))
		assert.True(t, ok)
		assert.Equal(t, tt.dataset, d)
		assert.Equal(t, tt.epoch, e)
	}
	assert.NotEqual(t, dekAAD("ab", 1), dekAAD("a", 1), "length-prefixed: no two contexts encode alike")
	good := dekAAD("payroll", 1)
	for _, bad := range [][]byte{nil, []byte("payroll"), good[:len(good)-1], append(good, 0), []byte(dekAADMagic + "\xff\xff\xff\xff")} {
		_, _, ok := parseDEKAAD(bad)
		assert.False(t, ok, "%q", bad)
	}
}

func TestAuditReason(t *testing.T) {
	assert.Equal(t, "line one line two  tab", auditReason("line one\nline two\r\ttab"))
	assert.Equal(t, "bad ? byte", auditReason("bad \xff byte"))
	long := auditReason(strings.Repeat("é", 1000))
	assert.True(t, utf8.ValidString(long))
	assert.LessOrEqual(t, len(long), maxReasonLen+3)
	assert.True(t, strings.HasSuffix(long, "..."))
}
