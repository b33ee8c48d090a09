package record

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Record is one message in a batch. Offset and Timestamp are absolute (the
// batch's base plus the record's delta). A nil Key or Value is null.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the Unix epoch
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// RecordHeader is one message header: a string name and a bytes value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Builder accumulates records into one uncompressed batch. The zero value is
// ready to use; Reset reuses its buffer.
type Builder struct {
	buf      []byte
	n        int32
	first    int64
	max      int64
	base     int64 // the base offset (AddAt's first record's; 0 with Add)
	last     int64 // the last record's offset delta
	producer int64
	epoch    int16
	sequence int32
	// hasProducer is false until SetProducer: the batch then says -1.
	hasProducer bool
}

// Reset empties the builder, keeping its buffer.
func (b *Builder) Reset() {
	*b = Builder{buf: b.buf[:0]}
}

// SetProducer records the idempotent producer id, epoch and base sequence the
// batch carries. Without it the batch has producer id -1.
func (b *Builder) SetProducer(id int64, epoch int16, baseSequence int32) {
	b.producer, b.epoch, b.sequence = id, epoch, baseSequence
	b.hasProducer = true
}

// Len is the number of records added.
func (b *Builder) Len() int { return int(b.n) }

// Size is the batch size in bytes if built now.
func (b *Builder) Size() int {
	if b.n == 0 {
		return HeaderSize
	}
	return len(b.buf)
}

// Add appends a record. Its Offset is ignored: records are numbered in the
// order added.
func (b *Builder) Add(r Record) { b.add(&r, int64(b.n)) }

// AddAt appends a record at its own Offset: the first record's offset is
// the batch's base offset and each record's delta is its offset less that.
// Offsets must ascend, not necessarily densely. Such a batch is for the
// wire (queue deliveries), never for the log, which wants dense offsets.
// Do not mix with Add.
func (b *Builder) AddAt(r Record) {
	if b.n == 0 {
		b.base = r.Offset
	}
	b.add(&r, r.Offset-b.base)
}

func (b *Builder) add(r *Record, delta int64) {
	if b.n == 0 {
		b.first, b.max = r.Timestamp, r.Timestamp
		if len(b.buf) == 0 {
			b.buf = append(b.buf, make([]byte, HeaderSize)...)
		}
	}
	if r.Timestamp > b.max {
		b.max = r.Timestamp
	}
	body := recordBodySize(r, r.Timestamp-b.first, delta)
	b.buf = binary.AppendVarint(b.buf, int64(body))
	b.buf = append(b.buf, 0) // attributes
	b.buf = binary.AppendVarint(b.buf, r.Timestamp-b.first)
	b.buf = binary.AppendVarint(b.buf, delta)
	b.buf = appendBytes(b.buf, r.Key)
	b.buf = appendBytes(b.buf, r.Value)
	b.buf = binary.AppendVarint(b.buf, int64(len(r.Headers)))
	for _, h := range r.Headers {
		b.buf = binary.AppendVarint(b.buf, int64(len(h.Key)))
		b.buf = append(b.buf, h.Key...)
		b.buf = appendBytes(b.buf, h.Value)
	}
	b.last = delta
	b.n++
}

// Build returns the finished batch with its CRC set and base offset 0 (for
// AddAt, its first record's offset). The returned slice aliases the
// builder's buffer until Reset.
func (b *Builder) Build() []byte {
	if b.n == 0 {
		b.buf = append(b.buf[:0], make([]byte, HeaderSize)...)
	}
	out := b.buf
	be := binary.BigEndian
	be.PutUint64(out[offBaseOffset:], uint64(b.base))
	be.PutUint32(out[offLength:], uint32(len(out)-LogOverhead))
	be.PutUint32(out[offLeaderEpoch:], 0)
	out[offMagic] = Magic
	be.PutUint16(out[offAttributes:], 0)
	be.PutUint32(out[offLastDelta:], uint32(b.last))
	be.PutUint64(out[offBaseTime:], uint64(b.first))
	be.PutUint64(out[offMaxTime:], uint64(b.max))
	producer := int64(-1)
	epoch, seq := int16(-1), int32(-1)
	if b.hasProducer {
		producer, epoch, seq = b.producer, b.epoch, b.sequence
	}
	be.PutUint64(out[offProducerID:], uint64(producer))
	be.PutUint16(out[offProducerEpch:], uint16(epoch))
	be.PutUint32(out[offBaseSequence:], uint32(seq))
	be.PutUint32(out[offRecordCount:], uint32(b.n))
	be.PutUint32(out[offCRC:], Checksum(out))
	return out
}

// Encode builds one batch holding rs; a convenience over Builder.
func Encode(rs ...Record) []byte {
	var b Builder
	for _, r := range rs {
		b.Add(r)
	}
	return b.Build()
}

func appendBytes(buf, p []byte) []byte {
	if p == nil {
		return binary.AppendVarint(buf, -1)
	}
	buf = binary.AppendVarint(buf, int64(len(p)))
	return append(buf, p...)
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func bytesLen(p []byte) int {
	if p == nil {
		return 1
	}
	return varintLen(int64(len(p))) + len(p)
}

func recordBodySize(r *Record, tsDelta, offDelta int64) int {
	n := 1 + varintLen(tsDelta) + varintLen(offDelta) + bytesLen(r.Key) + bytesLen(r.Value)
	n += varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	return n
}

// Limits bound what Records accepts. Zero fields mean no limit.
type Limits struct {
	MaxRecordBytes int // largest encoded record (its length field)
}

// Records decodes the records of an uncompressed, verified batch and calls fn
// for each. Keys, values and header values alias batch. It checks that the
// records fill the batch exactly and that their count matches the header.
func Records(batch []byte, lim Limits, fn func(Record) error) error {
	rd, err := NewReader(batch, lim)
	if err != nil {
		return err
	}
	var r Record
	for rd.Next(&r) {
		if err := fn(r); err != nil {
			return err
		}
	}
	return rd.Err()
}

// Reader walks the records of one uncompressed batch, one Next at a time,
// with the checks of Records. It is what a hot loop uses to decode straight
// into its own structures without a call per record.
type Reader struct {
	h   Header
	lim Limits
	d   decoder
	i   int32
	err error
}

// NewReader returns a Reader of batch, or the error of its header. It is
// a value, so that a loop's Reader lives on its stack.
func NewReader(batch []byte, lim Limits) (Reader, error) {
	h, body, err := uncompressedBody(batch)
	if err != nil {
		return Reader{}, err
	}
	return Reader{h: h, lim: lim, d: decoder{buf: body}}, nil
}

// Header is the batch's header.
func (rd *Reader) Header() *Header { return &rd.h }

// Next decodes the next record into r (keys, values and header values
// alias the batch; r.Headers is a new slice, or nil without headers). It
// returns false at the end of the batch or at the first error, which Err
// then returns.
func (rd *Reader) Next(r *Record) bool {
	if rd.err != nil {
		return false
	}
	if rd.i >= rd.h.NumRecords {
		if len(rd.d.buf) != 0 {
			rd.err = fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(rd.d.buf))
		}
		return false
	}
	if err := rd.next(r); err != nil {
		rd.err = err
		return false
	}
	rd.i++
	return true
}

// Err is the error that stopped Next, or nil at a clean end.
func (rd *Reader) Err() error { return rd.err }

func (rd *Reader) next(r *Record) error {
	i, h, d := rd.i, &rd.h, &rd.d
	length := d.varint()
	if d.err != nil {
		return d.fail(i)
	}
	if length < 0 || length > int64(len(d.buf)) {
		return fmt.Errorf("%w: record %d length %d, %d bytes left", ErrCorrupt, i, length, len(d.buf))
	}
	if rd.lim.MaxRecordBytes > 0 && length > int64(rd.lim.MaxRecordBytes) {
		return fmt.Errorf("%w: record %d is %d bytes, limit %d", ErrTooLarge, i, length, rd.lim.MaxRecordBytes)
	}
	rec := decoder{buf: d.buf[:length]}
	d.buf = d.buf[length:]
	rec.byte() // attributes
	tsDelta := rec.varint()
	offDelta := rec.varint()
	r.Offset = h.BaseOffset + offDelta
	r.Timestamp = h.FirstTimestamp + tsDelta
	r.Key = rec.bytes()
	r.Value = rec.bytes()
	r.Headers = nil
	nh := rec.varint()
	if rec.err == nil && (nh < 0 || nh > int64(len(rec.buf))) {
		return fmt.Errorf("%w: record %d has %d headers in %d bytes", ErrCorrupt, i, nh, len(rec.buf))
	}
	if nh > 0 {
		r.Headers = make([]RecordHeader, 0, nh)
	}
	for j := int64(0); j < nh && rec.err == nil; j++ {
		k := rec.bytes()
		if k == nil && rec.err == nil {
			rec.setErr("null header key")
		}
		r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: rec.bytes()})
	}
	if rec.err != nil {
		return rec.fail(i)
	}
	if len(rec.buf) != 0 {
		return fmt.Errorf("%w: record %d has %d trailing bytes", ErrCorrupt, i, len(rec.buf))
	}
	if offDelta < 0 || offDelta > int64(h.LastOffsetDelta) {
		return fmt.Errorf("%w: record %d offset delta %d outside 0..%d", ErrCorrupt, i, offDelta, h.LastOffsetDelta)
	}
	return nil
}

// uncompressedBody returns the header and the record bytes of an
// uncompressed batch.
func uncompressedBody(batch []byte) (Header, []byte, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return h, nil, err
	}
	if h.Compression() != CompressionNone {
		return h, nil, fmt.Errorf("%w: %s", ErrCompressed, h.Compression())
	}
	if h.Size() > len(batch) {
		return h, nil, fmt.Errorf("%w: batch of %d bytes, have %d", ErrShort, h.Size(), len(batch))
	}
	return h, batch[HeaderSize:h.Size()], nil
}

// decoder reads varints and length-prefixed bytes, remembering the first error.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(i int32) error {
	return fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, d.err)
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.buf) < 1 {
		d.setErr("missing attributes")
		return 0
	}
	c := d.buf[0]
	d.buf = d.buf[1:]
	return c
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := uvarintZigzag(d.buf)
	if n <= 0 {
		d.setErr("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.varint()
	if d.err != nil {
		return nil
	}
	if n == -1 {
		return nil
	}
	if n < 0 || n > int64(len(d.buf)) || n > math.MaxInt32 {
		d.setErr(fmt.Sprintf("length %d with %d bytes left", n, len(d.buf)))
		return nil
	}
	p := d.buf[:n:n]
	d.buf = d.buf[n:]
	return p
}

func (d *decoder) setErr(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s", msg)
	}
}
