package kafka

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/ferrymq/ferry/storage/record"
)

// errTooLarge: a compressed batch inflates past the limit (a decompression
// bomb, or a batch larger than the broker takes).
var errTooLarge = fmt.Errorf("%w: decompressed batch", record.ErrTooLarge)

// xerialMagic starts snappy data in the framing of the Java client's
// xerial library (librdkafka reads and writes it too); without it, snappy
// data is one raw block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompressed returns batch as an uncompressed batch: the same header with
// the compression bits cleared, the length of the inflated records and its
// CRC computed again. It refuses to inflate past limit bytes.
func decompressed(h record.Header, batch []byte, limit int) ([]byte, error) {
	body := batch[record.HeaderSize:h.Size()]
	records, err := inflate(h.Compression(), body, limit)
	if err != nil {
		if !errors.Is(err, record.ErrTooLarge) && !errors.Is(err, errUnsupportedCompression) {
			err = fmt.Errorf("%w: %v", record.ErrCorrupt, err)
		}
		return nil, fmt.Errorf("%s batch at base offset %d: %w", h.Compression(), h.BaseOffset, err)
	}
	out := make([]byte, record.HeaderSize, record.HeaderSize+len(records))
	copy(out, batch[:record.HeaderSize])
	out = append(out, records...)
	const offLength, offAttributes = 8, 21
	binary.BigEndian.PutUint32(out[offLength:], uint32(len(out)-record.LogOverhead))
	attrs := binary.BigEndian.Uint16(out[offAttributes:])
	binary.BigEndian.PutUint16(out[offAttributes:], attrs&^0x07)
	const offCRC = 17
	binary.BigEndian.PutUint32(out[offCRC:], record.Checksum(out))
	return out, nil
}

// inflate decompresses one batch's records.
func inflate(c record.Compression, data []byte, limit int) ([]byte, error) {
	switch c {
	case record.CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return readLimited(zr, limit)
	case record.CompressionSnappy:
		return unsnappy(data, limit)
	case record.CompressionLZ4:
		return readLimited(lz4.NewReader(bytes.NewReader(data)), limit)
	case record.CompressionZstd:
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)+1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return readLimited(zr, limit)
	}
	return nil, fmt.Errorf("%w: %s", errUnsupportedCompression, c)
}

// readLimited reads r to its end, failing past limit bytes.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	return b, nil
}

// unsnappy decodes a raw snappy block or xerial-framed chunks of them.
func unsnappy(data []byte, limit int) ([]byte, error) {
	if !bytes.HasPrefix(data, xerialMagic) {
		return snappyBlock(nil, data, limit)
	}
	// magic (8 bytes), version (4), compatible version (4), then chunks:
	// a 4-byte length and a snappy block.
	if len(data) < 16 {
		return nil, errors.New("xerial snappy header cut short")
	}
	data = data[16:]
	var out []byte
	for len(data) > 0 {
		if len(data) < 4 {
			return nil, errors.New("xerial snappy chunk length cut short")
		}
		n := binary.BigEndian.Uint32(data)
		data = data[4:]
		if uint64(n) > uint64(len(data)) {
			return nil, fmt.Errorf("xerial snappy chunk of %d bytes, %d left", n, len(data))
		}
		var err error
		if out, err = snappyBlock(out, data[:n], limit); err != nil {
			return nil, err
		}
		data = data[n:]
	}
	return out, nil
}

// snappyBlock appends the decoded block to out, within limit in all.
func snappyBlock(out, block []byte, limit int) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n > limit-len(out) {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	dec, err := s2.Decode(nil, block)
	if err != nil {
		return nil, err
	}
	return append(out, dec...), nil
}
