package runtimetest

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"testing"
)

// splitmix64 is the seed expander both ukrand generators use.
func splitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// xoshiro256ss is the reference generator (Blackman & Vigna).
func xoshiro256ss(seed uint64, n int) []uint64 {
	var s [4]uint64
	for i := range s {
		s[i] = splitmix64(&seed)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = bits.RotateLeft64(s[1]*5, 7) * 9
		t := s[1] << 17
		s[2] ^= s[0]
		s[3] ^= s[1]
		s[1] ^= s[2]
		s[0] ^= s[3]
		s[2] ^= t
		s[3] = bits.RotateLeft64(s[3], 45)
	}
	return out
}

// chacha20Block is RFC 8439's block function, written independently of
// the guest's.
func chacha20Block(key [8]uint32, counter uint32, nonce [3]uint32) [16]uint32 {
	x := [16]uint32{0x61707865, 0x3320646e, 0x79622d32, 0x6b206574,
		key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
		counter, nonce[0], nonce[1], nonce[2]}
	in := x
	qr := func(a, b, c, d int) {
		x[a] += x[b]
		x[d] = bits.RotateLeft32(x[d]^x[a], 16)
		x[c] += x[d]
		x[b] = bits.RotateLeft32(x[b]^x[c], 12)
		x[a] += x[b]
		x[d] = bits.RotateLeft32(x[d]^x[a], 8)
		x[c] += x[d]
		x[b] = bits.RotateLeft32(x[b]^x[c], 7)
	}
	for i := 0; i < 10; i++ {
		qr(0, 4, 8, 12)
		qr(1, 5, 9, 13)
		qr(2, 6, 10, 14)
		qr(3, 7, 11, 15)
		qr(0, 5, 10, 15)
		qr(1, 6, 11, 12)
		qr(2, 7, 8, 13)
		qr(3, 4, 9, 14)
	}
	for i := range x {
		x[i] += in[i]
	}
	return x
}

func chacha20Stream(seed uint64, n int) []uint64 {
	var key [8]uint32
	for i := 0; i < 4; i++ {
		v := splitmix64(&seed)
		key[2*i], key[2*i+1] = uint32(v), uint32(v>>32)
	}
	var words []uint32
	for ctr := uint32(0); len(words) < 2*n; ctr++ {
		b := chacha20Block(key, ctr, [3]uint32{})
		words = append(words, b[:]...)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(words[2*i]) | uint64(words[2*i+1])<<32
	}
	return out
}

// rfc8439Block is the expected output of RFC 8439 section 2.3.2.
const rfc8439Block = "e4e7f110 15593bd1 1fdd0f50 c47120a3 c7f4d1c7 0368c033 9aaa2204 4e6cd4c3 " +
	"466482d2 09aa9f07 05d7c214 a2028bd9 d19c12b5 b94e16de e883d0cb 4e3c50a2"

func TestChaCha20ReferenceMatchesRFC8439(t *testing.T) {
	var key [8]uint32
	var raw [32]byte
	for i := range raw {
		raw[i] = byte(i)
	}
	for i := range key {
		key[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	b := chacha20Block(key, 1, [3]uint32{0x09000000, 0x4a000000, 0})
	var got []string
	for _, w := range b {
		got = append(got, fmt.Sprintf("%08x", w))
	}
	if g := strings.Join(got, " "); g != rfc8439Block {
		t.Fatalf("reference ChaCha20 block:\n%s\nwant\n%s", g, rfc8439Block)
	}
}

func TestUkrandMatchesReferenceGeneratorsForItsVariant(t *testing.T) {
	const seed = 0x123456789abcdef
	forEachSet(t, func(t *testing.T, i int, exe string) {
		set := runtimeSets(t)[i]
		out := runDriver(t, exe, "rand", fmt.Sprint(seed))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var want []uint64
		switch set.randV {
		case "xoshiro":
			want = xoshiro256ss(seed, 8)
		case "chacha20":
			want = chacha20Stream(seed, 8)
			if len(lines) < 9 || lines[8] != "chacha "+rfc8439Block {
				t.Fatalf("guest ChaCha20 block function does not give RFC 8439's test vector:\n%s", out)
			}
		default:
			t.Fatalf("no reference for ukrand variant %q", set.randV)
		}
		for k, w := range want {
			if k >= len(lines) || lines[k] != fmt.Sprintf("%016x", w) {
				t.Fatalf("output %d of seed %#x: got\n%s\nwant %016x", k, uint64(seed), out, w)
			}
		}
	})
}
