package runner

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// idSet records which message ids were seen, lock-free: a two-level bitset
// whose chunks are allocated as ids reach them, so a run needs no message
// count up front and a million messages cost 128 KiB.
type idSet struct {
	chunks [maxChunks]atomic.Pointer[[chunkWords]uint64]
	unique atomic.Int64
	dups   atomic.Int64
}

const (
	chunkBits  = 1 << 16
	chunkWords = chunkBits / 64
	maxChunks  = 1 << 12
	// maxIDs bounds a run's messages (268 million).
	maxIDs = chunkBits * maxChunks
)

// add marks id as seen and says whether it had been seen already (then it
// is counted as a duplicate).
func (s *idSet) add(id uint64) (dup bool) {
	if id >= maxIDs {
		s.dups.Add(1) // cannot be one of ours: count it against the run
		return true
	}
	c := s.chunks[id/chunkBits].Load()
	if c == nil {
		fresh := new([chunkWords]uint64)
		if s.chunks[id/chunkBits].CompareAndSwap(nil, fresh) {
			c = fresh
		} else {
			c = s.chunks[id/chunkBits].Load()
		}
	}
	bit := uint64(1) << (id % 64)
	if atomic.OrUint64(&c[(id%chunkBits)/64], bit)&bit != 0 {
		s.dups.Add(1)
		return true
	}
	s.unique.Add(1)
	return false
}

func (s *idSet) has(id uint64) bool {
	if id >= maxIDs {
		return false
	}
	c := s.chunks[id/chunkBits].Load()
	return c != nil && atomic.LoadUint64(&c[(id%chunkBits)/64])&(uint64(1)<<(id%64)) != 0
}

// Payload layout: the runner's header in the first 16 bytes of every
// message, the rest zeros.
//
//	0       8                16           size
//	+-------+----------------+------ ... --+
//	| id    | scheduled send |  padding    |
//	| (BE)  | unix ns (BE)   |             |
//	+-------+----------------+------ ... --+
func putHeader(p []byte, id uint64, sched time.Time) {
	binary.BigEndian.PutUint64(p, id)
	binary.BigEndian.PutUint64(p[8:], uint64(sched.UnixNano()))
}

func readHeader(p []byte) (id uint64, schedNanos int64, ok bool) {
	if len(p) < 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(p), int64(binary.BigEndian.Uint64(p[8:])), true
}
