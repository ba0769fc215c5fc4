package desc

// Scratch returns a buffer of n bytes that its caller fills and lets go
// soon (a description, a manifest or a small blob read whole, an
// instance's data-arena run until the instance is built): one of more
// than 8 KiB and at most 32 KiB gets a capacity past 32 KiB, so that the
// Go runtime allocates it as a large object (one span class for every
// size) instead of in one of the sixteen size classes between.
//
// Why: every size class a process allocates in costs it span-set
// metadata the runtime keeps for good (a 2 KiB spine and a 4.6 KiB block
// for each of up to four sets: partial and full, swept and unswept),
// whatever it later frees. A fleet's descriptions and blobs have every
// size, so reading them spread over the whole range: a monitor that
// resolved and planned 1000 pooled unikernels held 12 size classes and
// ~50 span sets more than one that ran the same fleet's plain images, and
// ~280 KiB more of that metadata (docs/notes/monitor-memory.md, Session
// 14). The rounding costs garbage only (the buffer is let go).
func Scratch(n int64) []byte {
	if n > scratchSmall && n <= scratchLarge {
		return make([]byte, n, scratchLarge+1)
	}
	return make([]byte, n)
}

const (
	scratchSmall = 8 << 10  // the size classes up to here are dense and used anyway
	scratchLarge = 32 << 10 // the Go runtime's largest small-object size
)
