package herd

// hash.go: the keyed 64-bit hash behind the client table and the link-up
// summaries. It is pure.

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// hashKey keys hashBytes. Every server of a herd must use the same key,
// because link-up summaries compare bucket fingerprints made with it; the
// key is derived from Config.Secret (see tableKey), so that without the
// secret nobody can aim client IDs at one bucket of the index.
type hashKey struct{ k0, k1 uint64 }

// tableKey derives the herd-wide hash key from the shared secret (which
// may be empty: the key is then fixed and public).
func tableKey(secret []byte) hashKey {
	h := sha256.New()
	h.Write([]byte("herd/table-key\n"))
	h.Write(secret)
	var sum [32]byte
	h.Sum(sum[:0])
	return hashKey{binary.LittleEndian.Uint64(sum[0:]), binary.LittleEndian.Uint64(sum[8:])}
}

const (
	hashM1 = 0xa0761d6478bd642f
	hashM2 = 0xe7037ed1a0b428db
	hashM3 = 0x8ebc6af09c88c6e3
)

// mum is the multiply-and-fold mixer of wyhash: the high and low halves
// of the 128-bit product, xored.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashBytes hashes b under k. Every bit of the result depends on every
// input bit, the top bits included, which the table uses to place
// clients.
func hashBytes[T ~string | ~[]byte](k hashKey, b T) uint64 {
	h := k.k0 ^ mum(uint64(len(b))^hashM1, k.k1^hashM2)
	for len(b) >= 8 {
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		h = mum(w^k.k1, h^hashM1) ^ h
		b = b[8:]
	}
	var w uint64
	for i := len(b) - 1; i >= 0; i-- {
		w = w<<8 | uint64(b[i])
	}
	h = mum(w^k.k0^hashM3, h^hashM2)
	return mum(h^k.k1, hashM3) ^ h
}
