package engine

import "encoding/binary"

// murmur2 is Kafka's key hash (the Java client's Utils.murmur2), so a key
// lands in the partition a Kafka client would choose.
func murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition is the partition Kafka's default partitioner gives key among
// n partitions.
func KeyPartition(key []byte, n int) int {
	if n <= 0 {
		return 0
	}
	return int(uint32(murmur2(key))&0x7fffffff) % n
}
