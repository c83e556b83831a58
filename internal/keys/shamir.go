package keys

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/drflow/drflow/providers"
)

// Shamir secret sharing over GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, one
// independent polynomial per secret byte. A share is its x coordinate (1..255) followed by
// the polynomials' values there.
//
// The field arithmetic is branch-free and uses no lookup tables: log/exp tables indexed by
// secret bytes leak them through cache timing, and a split or combine handles nothing but
// secrets.

// MaxShares is the largest number of shares: x coordinates are the non-zero bytes.
const MaxShares = 255

// Split divides secret into n shares of which any k recover it and any k-1 reveal nothing
// about it. 2 <= k <= n <= 255.
func Split(secret []byte, k, n int) ([][]byte, error) {
	return split(secret, k, n, rand.Reader)
}

// split draws the coefficients from rnd: (k-1)*len(secret) bytes, coefficient j (1-based) of
// the polynomial of secret byte i being byte (j-1)*len(secret)+i. Share i has x = i+1.
func split(secret []byte, k, n int, rnd io.Reader) ([][]byte, error) {
	switch {
	case len(secret) == 0:
		return nil, fmt.Errorf("shamir split: %w: empty secret", providers.ErrInvalidArgument)
	case k < 2:
		return nil, fmt.Errorf("shamir split: %w: threshold %d is below 2 (a single share would be the secret)", providers.ErrInvalidArgument, k)
	case n > MaxShares:
		return nil, fmt.Errorf("shamir split: %w: %d shares, at most %d", providers.ErrInvalidArgument, n, MaxShares)
	case k > n:
		return nil, fmt.Errorf("shamir split: %w: threshold %d exceeds the %d shares", providers.ErrInvalidArgument, k, n)
	}
	coef := make([]byte, (k-1)*len(secret))
	defer clear(coef)
	if _, err := io.ReadFull(rnd, coef); err != nil {
		return nil, fmt.Errorf("shamir split: random coefficients: %w", err)
	}
	shares := make([][]byte, n)
	for s := range shares {
		x := byte(s + 1)
		share := make([]byte, 1+len(secret))
		share[0] = x
		for i, a0 := range secret {
			// Horner: ((a_{k-1} x + a_{k-2}) x + ...) x + a0
			var y byte
			for j := k - 1; j >= 1; j-- {
				y = gfMul(y, x) ^ coef[(j-1)*len(secret)+i]
			}
			share[1+i] = gfMul(y, x) ^ a0
		}
		shares[s] = share
	}
	return shares, nil
}

// Combine recovers the secret from shares made by Split. Given fewer than the threshold it
// returns a wrong value without noticing (nothing in the shares says how many are needed);
// KEKShare carries a fingerprint to catch that.
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("shamir combine: %w: %d shares, at least 2 needed", providers.ErrInvalidArgument, len(shares))
	}
	if len(shares) > MaxShares {
		return nil, fmt.Errorf("shamir combine: %w: %d shares, at most %d", providers.ErrInvalidArgument, len(shares), MaxShares)
	}
	size := len(shares[0])
	if size < 2 {
		return nil, fmt.Errorf("shamir combine: %w: share 1 is %d bytes, too short", providers.ErrInvalidArgument, size)
	}
	xs := make([]byte, len(shares))
	var seen [256]bool
	for i, s := range shares {
		if len(s) != size {
			return nil, fmt.Errorf("shamir combine: %w: share %d is %d bytes, share 1 is %d", providers.ErrInvalidArgument, i+1, len(s), size)
		}
		x := s[0]
		if x == 0 {
			return nil, fmt.Errorf("shamir combine: %w: share %d has x = 0", providers.ErrInvalidArgument, i+1)
		}
		if seen[x] {
			return nil, fmt.Errorf("shamir combine: %w: two shares have x = %d", providers.ErrInvalidArgument, x)
		}
		seen[x] = true
		xs[i] = x
	}
	ys := make([]byte, len(shares))
	secret := make([]byte, size-1)
	for i := range secret {
		for j, s := range shares {
			ys[j] = s[1+i]
		}
		secret[i] = interpolate(xs, ys, 0)
	}
	clear(ys)
	return secret, nil
}

// interpolate evaluates at x the polynomial of degree len(xs)-1 through the points
// (xs[j], ys[j]); the xs must be distinct. In GF(2^8) subtraction is XOR, so the Lagrange
// basis is L_j(x) = prod_{m != j} (x ^ xs[m]) / (xs[j] ^ xs[m]).
func interpolate(xs, ys []byte, x byte) byte {
	var y byte
	for j := range xs {
		num, den := byte(1), byte(1)
		for m := range xs {
			if m == j {
				continue
			}
			num = gfMul(num, x^xs[m])
			den = gfMul(den, xs[j]^xs[m])
		}
		y ^= gfMul(ys[j], gfMul(num, gfInv(den)))
	}
	return y
}

// gfMul multiplies in GF(2^8) without branches or table lookups on its operands.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1) // add a if b's low bit is set
		b >>= 1
		a = a<<1 ^ 0x1b&-(a>>7) // multiply a by x, reducing if it overflowed
	}
	return p
}

// gfInv is the multiplicative inverse, a^254 (a^255 = 1 for a != 0); gfInv(0) = 0.
func gfInv(a byte) byte {
	a2 := gfMul(a, a)      // a^2
	a4 := gfMul(a2, a2)    // a^4
	a8 := gfMul(a4, a4)    // a^8
	a16 := gfMul(a8, a8)   // a^16
	a32 := gfMul(a16, a16) // a^32
	a64 := gfMul(a32, a32) // a^64
	a128 := gfMul(a64, a64)
	// 254 = 128 + 64 + 32 + 16 + 8 + 4 + 2
	return gfMul(gfMul(gfMul(gfMul(gfMul(gfMul(a128, a64), a32), a16), a8), a4), a2)
}
