package keys

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

// refMul multiplies in GF(2^8) the textbook way: carry-less product, then reduction by the
// AES polynomial.
func refMul(a, b byte) byte {
	var p uint16
	for i := 0; i < 8; i++ {
		if b&(1<<i) != 0 {
			p ^= uint16(a) << i
		}
	}
	for i := 15; i >= 8; i-- {
		if p&(1<<i) != 0 {
			p ^= 0x11b << (i - 8)
		}
	}
	return byte(p)
}

func TestGFArithmetic(t *testing.T) {
	// FIPS-197 section 4.2.
	assert.Equal(t, byte(0xc1), gfMul(0x57, 0x83))
	assert.Equal(t, byte(0xfe), gfMul(0x57, 0x13))
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			if got, want := gfMul(byte(a), byte(b)), refMul(byte(a), byte(b)); got != want {
				t.Fatalf("gfMul(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
		}
		if a != 0 {
			require.Equal(t, byte(1), gfMul(byte(a), gfInv(byte(a))), "inverse of %#x", a)
		}
	}
	assert.Equal(t, byte(0), gfInv(0))
}

func TestSplitKnownAnswer(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		k, n   int
		coef   []byte
		want   [][]byte
	}{
		{
			// f(x) = 0x2a + 3x: f(1) = 0x2a^0x03, f(2) = 0x2a^0x06, f(3) = 0x2a^(3*3 = 0x05).
			name: "by hand", secret: []byte{0x2a}, k: 2, n: 3, coef: []byte{0x03},
			want: [][]byte{{1, 0x29}, {2, 0x2c}, {3, 0x2f}},
		},
		{
			// Computed by an independent log/exp-table implementation.
			name: "3 of 5", secret: []byte{0x2a, 0x00, 0xff, 0x53}, k: 3, n: 5,
			coef: []byte{1, 2, 3, 4, 5, 6, 7, 8},
			want: [][]byte{
				{0x01, 0x2e, 0x04, 0xfb, 0x5f},
				{0x02, 0x3c, 0x1c, 0xe5, 0x7b},
				{0x03, 0x38, 0x18, 0xe1, 0x77},
				{0x04, 0x7e, 0x68, 0x83, 0xc3},
				{0x05, 0x7a, 0x6c, 0x87, 0xcf},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := split(tt.secret, tt.k, tt.n, bytes.NewReader(tt.coef))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			back, err := Combine(got[:tt.k])
			require.NoError(t, err)
			assert.Equal(t, tt.secret, back)
		})
	}
}

func TestSplitFailsOnShortRandomness(t *testing.T) {
	_, err := split([]byte{1, 2}, 3, 3, bytes.NewReader([]byte{1, 2, 3}))
	require.Error(t, err)
}

func TestCombineAnyKOfN(t *testing.T) {
	secret := make([]byte, SecretSize)
	_, _ = rand.Read(secret)
	for _, kn := range [][2]int{{2, 2}, {2, 3}, {3, 5}, {5, 5}, {4, 7}} {
		k, n := kn[0], kn[1]
		t.Run(fmt.Sprintf("%d of %d", k, n), func(t *testing.T) {
			shares, err := Split(secret, k, n)
			require.NoError(t, err)
			require.Len(t, shares, n)
			for _, s := range shares {
				require.Len(t, s, 1+len(secret))
			}
			subsets := 0
			for mask := 0; mask < 1<<n; mask++ {
				var pick [][]byte
				for i := 0; i < n; i++ {
					if mask&(1<<i) != 0 {
						pick = append(pick, shares[i])
					}
				}
				if len(pick) < k {
					continue
				}
				subsets++
				got, err := Combine(pick)
				require.NoError(t, err)
				require.Equal(t, secret, got, "subset %b", mask)
			}
			assert.Positive(t, subsets)
		})
	}
	t.Run("255 shares", func(t *testing.T) {
		shares, err := Split(secret, 3, MaxShares)
		require.NoError(t, err)
		got, err := Combine([][]byte{shares[254], shares[100], shares[7]})
		require.NoError(t, err)
		assert.Equal(t, secret, got)
	})
}

// TestFewerThanKSharesRevealNothing shows that k-1 shares do not determine the secret: they
// combine to something else, and every possible secret is consistent with them.
func TestFewerThanKSharesRevealNothing(t *testing.T) {
	secret := []byte{0x2a, 0x00, 0xff, 0x53}
	const k, n = 3, 5
	shares, err := split(secret, k, n, bytes.NewReader([]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	require.NoError(t, err)
	known := shares[:k-1] // x = 1, 2

	got, err := Combine(known)
	require.NoError(t, err)
	assert.NotEqual(t, secret, got, "k-1 shares do not recover the secret")

	// For every candidate value of the first secret byte there is a polynomial of degree
	// k-1 through (0, candidate) and the k-1 known points; a k-th share taken from it makes
	// the known shares combine to the candidate. So the known shares rule out nothing.
	xs := []byte{0, known[0][0], known[1][0]}
	const x3 = 0x07
	for candidate := 0; candidate < 256; candidate++ {
		ys := []byte{byte(candidate), known[0][1], known[1][1]}
		for i := range xs[1:] {
			require.Equal(t, ys[1+i], interpolate(xs, ys, xs[1+i]), "the fake polynomial passes through the known share")
		}
		forged := []byte{x3, interpolate(xs, ys, x3)}
		back, err := Combine([][]byte{{known[0][0], known[0][1]}, {known[1][0], known[1][1]}, forged})
		require.NoError(t, err)
		require.Equal(t, []byte{byte(candidate)}, back)
	}
}

func TestSplitCombineValidation(t *testing.T) {
	splits := []struct {
		name   string
		secret []byte
		k, n   int
	}{
		{"empty secret", nil, 2, 3},
		{"k below 2", []byte{1}, 1, 3},
		{"k above n", []byte{1}, 4, 3},
		{"n above 255", []byte{1}, 2, 256},
	}
	for _, tt := range splits {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Split(tt.secret, tt.k, tt.n)
			require.ErrorIs(t, err, providers.ErrInvalidArgument)
		})
	}

	shares, err := Split([]byte{1, 2, 3}, 2, 3)
	require.NoError(t, err)
	combines := []struct {
		name   string
		shares [][]byte
	}{
		{"no shares", nil},
		{"one share", shares[:1]},
		{"duplicate x", [][]byte{shares[0], shares[0]}},
		{"x zero", [][]byte{{0, 1, 2, 3}, shares[1]}},
		{"different lengths", [][]byte{shares[0], shares[1][:3]}},
		{"too short", [][]byte{{1}, {2}}},
	}
	for _, tt := range combines {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Combine(tt.shares)
			require.ErrorIs(t, err, providers.ErrInvalidArgument)
		})
	}
}
