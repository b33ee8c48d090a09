package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Sizes and positions of the batch header fields (see the package doc).
const (
	HeaderSize = 61 // bytes before the first record
	// LogOverhead is the part of the header not counted in batchLength.
	LogOverhead = 12
	// Magic is the only batch format version Ferry stores.
	Magic = 2
	// CRCStart is where the CRC's coverage starts: the attributes field. The
	// CRC runs from here to the end of the batch.
	CRCStart = offAttributes

	offBaseOffset   = 0
	offLength       = 8
	offLeaderEpoch  = 12
	offMagic        = 16
	offCRC          = 17
	offAttributes   = 21
	offLastDelta    = 23
	offBaseTime     = 27
	offMaxTime      = 35
	offProducerID   = 43
	offProducerEpch = 51
	offBaseSequence = 53
	offRecordCount  = 57
)

// Compression is the codec named by a batch's attributes.
type Compression int8

// The compression codecs of the format.
const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2
	CompressionLZ4    Compression = 3
	CompressionZstd   Compression = 4
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int8(c))
}

// Attribute bits.
const (
	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

// Errors returned by this package. Each decoding error is wrapped with
// detail; test with errors.Is.
var (
	// ErrShort means the bytes end before the batch or record does.
	ErrShort = errors.New("record: truncated batch")
	// ErrCorrupt means the bytes are not a valid batch: bad CRC, magic or lengths.
	ErrCorrupt = errors.New("record: corrupt batch")
	// ErrCompressed means records of a compressed batch were asked for, and
	// this package does not decompress.
	ErrCompressed = errors.New("record: batch is compressed")
	// ErrTooLarge means a batch or record exceeds a configured limit.
	ErrTooLarge = errors.New("record: too large")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is a decoded batch header.
type Header struct {
	BaseOffset      int64
	Length          int32 // batchLength: size of the batch minus LogOverhead
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Size is the whole batch's size in bytes, header included.
func (h *Header) Size() int { return int(h.Length) + LogOverhead }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset just after the batch.
func (h *Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression is the codec of the batch's records.
func (h *Header) Compression() Compression {
	return Compression(h.Attributes & attrCompressionMask)
}

// LogAppendTime reports whether timestamps were set by the log, not the producer.
func (h *Header) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports the transactional attribute bit.
func (h *Header) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch holds control records (transaction markers).
func (h *Header) Control() bool { return h.Attributes&attrControl != 0 }

// ParseHeader decodes the header at the start of b. It checks only that the
// header is present and its lengths are sane; Verify checks the CRC.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes, header needs %d", ErrShort, len(b), HeaderSize)
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.Length = int32(binary.BigEndian.Uint32(b[offLength:]))
	h.LeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastDelta:]))
	h.FirstTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTime:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTime:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
	if h.Magic != Magic {
		return h, fmt.Errorf("%w: magic %d, want %d", ErrCorrupt, h.Magic, Magic)
	}
	if h.Length < HeaderSize-LogOverhead {
		return h, fmt.Errorf("%w: batch length %d below header size", ErrCorrupt, h.Length)
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: record count %d, last offset delta %d", ErrCorrupt, h.NumRecords, h.LastOffsetDelta)
	}
	return h, nil
}

// Checksum computes the CRC-32C a batch's header should carry.
func Checksum(batch []byte) uint32 { return crc32.Checksum(batch[offAttributes:], castagnoli) }

// Verify decodes the header of the batch that starts b and checks that b
// holds exactly that batch with a valid CRC.
func Verify(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		if h.Size() > len(b) {
			return h, fmt.Errorf("%w: batch of %d bytes, have %d", ErrShort, h.Size(), len(b))
		}
		return h, fmt.Errorf("%w: batch of %d bytes followed by %d more", ErrCorrupt, h.Size(), len(b)-h.Size())
	}
	if got := Checksum(b); got != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, header says %08x", ErrCorrupt, got, h.CRC)
	}
	return h, nil
}

// SetBaseOffset rewrites a batch's base offset in place. The CRC does not
// cover it.
func SetBaseOffset(batch []byte, offset int64) {
	binary.BigEndian.PutUint64(batch[offBaseOffset:], uint64(offset))
}

// SetLeaderEpoch rewrites a batch's partition leader epoch in place. The CRC
// does not cover it.
func SetLeaderEpoch(batch []byte, epoch int32) {
	binary.BigEndian.PutUint32(batch[offLeaderEpoch:], uint32(epoch))
}

// Split walks a buffer of consecutive batches and calls fn with each whole
// batch and its verified header. It stops at the first error: ErrShort when
// the buffer ends inside a batch (the caller decides whether that is a torn
// tail), ErrCorrupt for damage.
func Split(buf []byte, fn func(h Header, batch []byte) error) error {
	for len(buf) > 0 {
		h, err := ParseHeader(buf)
		if err != nil {
			return err
		}
		if h.Size() > len(buf) {
			return fmt.Errorf("%w: batch of %d bytes, have %d", ErrShort, h.Size(), len(buf))
		}
		b := buf[:h.Size()]
		if got := Checksum(b); got != h.CRC {
			return fmt.Errorf("%w: at offset %d: crc %08x, header says %08x", ErrCorrupt, h.BaseOffset, got, h.CRC)
		}
		if err := fn(h, b); err != nil {
			return err
		}
		buf = buf[h.Size():]
	}
	return nil
}
