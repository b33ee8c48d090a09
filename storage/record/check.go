package record

import (
	"encoding/binary"
	"fmt"
)

// CheckDense walks the records of an uncompressed batch without decoding
// them into values: every length must fit, each record must be fully used,
// record i must have offset delta i (and the last delta is the count minus
// one), and no record may exceed the limit. It
// is the cheap check the log runs on every append.
func CheckDense(batch []byte, lim Limits) error {
	h, buf, err := uncompressedBody(batch)
	if err != nil {
		return err
	}
	if h.NumRecords > 0 && h.LastOffsetDelta != h.NumRecords-1 {
		return fmt.Errorf("%w: %d records spanning %d offsets", ErrCorrupt, h.NumRecords, h.LastOffsetDelta+1)
	}
	for i := range int64(h.NumRecords) {
		length, n := uvarintZigzag(buf)
		if n <= 0 || length < 0 || length > int64(len(buf)-n) {
			return fmt.Errorf("%w: record %d: bad length", ErrCorrupt, i)
		}
		if lim.MaxRecordBytes > 0 && length > int64(lim.MaxRecordBytes) {
			return fmt.Errorf("%w: record %d is %d bytes, limit %d", ErrTooLarge, i, length, lim.MaxRecordBytes)
		}
		rec := buf[n : n+int(length)]
		buf = buf[n+int(length):]
		if err := checkRecord(rec, i); err != nil {
			return fmt.Errorf("%w: record %d: %s", ErrCorrupt, i, err)
		}
	}
	if len(buf) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(buf))
	}
	return nil
}

type checkError string

func (e checkError) Error() string { return string(e) }

func checkRecord(rec []byte, i int64) error {
	if len(rec) < 1 {
		return checkError("empty")
	}
	rec = rec[1:] // attributes
	_, n := uvarintZigzag(rec)
	if n <= 0 {
		return checkError("bad timestamp delta")
	}
	rec = rec[n:]
	off, n := uvarintZigzag(rec)
	if n <= 0 {
		return checkError("bad offset delta")
	}
	if off != i {
		return checkError(fmt.Sprintf("offset delta %d, want %d", off, i))
	}
	rec = rec[n:]
	var ok bool
	if rec, ok = skipBytes(rec, true); !ok {
		return checkError("bad key")
	}
	if rec, ok = skipBytes(rec, true); !ok {
		return checkError("bad value")
	}
	nh, n := uvarintZigzag(rec)
	if n <= 0 || nh < 0 || nh > int64(len(rec)) {
		return checkError("bad header count")
	}
	rec = rec[n:]
	for range nh {
		if rec, ok = skipBytes(rec, false); !ok {
			return checkError("bad header key")
		}
		if rec, ok = skipBytes(rec, true); !ok {
			return checkError("bad header value")
		}
	}
	if len(rec) != 0 {
		return checkError("trailing bytes")
	}
	return nil
}

// skipBytes skips a varint-length-prefixed field; -1 (null) only when nullable.
func skipBytes(b []byte, nullable bool) ([]byte, bool) {
	l, n := uvarintZigzag(b)
	if n <= 0 || l < -1 || (l == -1 && !nullable) || l > int64(len(b)-n) {
		return b, false
	}
	if l == -1 {
		return b[n:], true
	}
	return b[n+int(l):], true
}

// uvarintZigzag decodes a zigzag varint with a fast path for one byte, the
// common case for lengths and deltas.
func uvarintZigzag(b []byte) (int64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		u := uint64(b[0])
		return int64(u>>1) ^ -int64(u&1), 1
	}
	if len(b) > 1 && b[1] < 0x80 { // lengths of 64..8191 bytes
		u := uint64(b[0]&0x7f) | uint64(b[1])<<7
		return int64(u>>1) ^ -int64(u&1), 2
	}
	return binary.Varint(b)
}
