package kafka

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/storage/record"
)

// testServer is a Kafka front door over an engine in a temporary folder
// (fsync never), with topic "t" of 3 partitions, no listener.
func testServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	b, err := engine.Open(engine.Options{Dir: tb.TempDir(), DefaultFsync: "never", FolderCheckInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := b.CreateTopic(context.Background(), "t", engine.TopicConfig{Partitions: 3}); err != nil {
		tb.Fatal(err)
	}
	s := New(b, opts)
	s.advertised.host, s.advertised.port = "127.0.0.1", 9092
	tb.Cleanup(func() {
		s.Close()
		b.Close()
	})
	return s
}

// codecs are the compressions a batch can carry; snappy twice, raw and in
// the xerial framing of the Java client.
var codecs = []struct {
	name string
	c    record.Compression
	fn   func([]byte) []byte
}{
	{"none", record.CompressionNone, nil},
	{"gzip", record.CompressionGzip, func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}},
	{"snappy", record.CompressionSnappy, func(b []byte) []byte { return s2.EncodeSnappy(nil, b) }},
	{"snappy-xerial", record.CompressionSnappy, func(b []byte) []byte {
		out := append([]byte(nil), xerialMagic...)
		out = binary.BigEndian.AppendUint32(out, 1)
		out = binary.BigEndian.AppendUint32(out, 1)
		for len(b) > 0 {
			n := min(len(b), 32) // several chunks even for a few records
			if len(b) > 4<<10 {
				n = min(len(b), 32<<10)
			}
			block := s2.EncodeSnappy(nil, b[:n])
			out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
			out = append(out, block...)
			b = b[n:]
		}
		return out
	}},
	{"lz4", record.CompressionLZ4, func(b []byte) []byte {
		var out bytes.Buffer
		zw := lz4.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}},
	{"zstd", record.CompressionZstd, func(b []byte) []byte {
		zw, _ := zstd.NewWriter(nil)
		defer zw.Close()
		return zw.EncodeAll(b, nil)
	}},
}

// testBatch builds a batch of n records ("v0", "v1"…, key "k", a header)
// for producer pid (none when -1) at sequence seq, compressed by codec i
// of codecs.
func testBatch(n int, pid int64, seq int32, codec int) []byte {
	var bld record.Builder
	if pid >= 0 {
		bld.SetProducer(pid, 0, seq)
	}
	for i := range n {
		bld.Add(record.Record{Timestamp: 1700000000000 + int64(i), Key: []byte("k"),
			Value: []byte("v" + string(rune('0'+i%10))), Headers: []record.RecordHeader{{Key: "h", Value: []byte{byte(i)}}}})
	}
	return compressBatch(bytes.Clone(bld.Build()), codecs[codec].c, codecs[codec].fn)
}

// compressBatch rewrites an uncompressed batch with its records compressed
// by fn, as a producer sends it.
func compressBatch(batch []byte, c record.Compression, fn func([]byte) []byte) []byte {
	if fn == nil {
		return batch
	}
	out := append([]byte(nil), batch[:record.HeaderSize]...)
	out = append(out, fn(batch[record.HeaderSize:])...)
	return fixBatch(out, c)
}

// fixBatch sets a batch's length, compression and CRC.
func fixBatch(b []byte, c record.Compression) []byte {
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-record.LogOverhead))
	attrs := binary.BigEndian.Uint16(b[21:])
	binary.BigEndian.PutUint16(b[21:], attrs&^7|uint16(c))
	binary.BigEndian.PutUint32(b[17:], record.Checksum(b))
	return b
}

// frame is a request as a client sends it: size, header v1 (and v2's
// empty tags when flexible), body.
func frame(req kmsg.Request, correlation int32) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(correlation))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// produceRequest is a Produce of version v with records for topic t's
// partition p.
func produceRequest(v int16, acks int16, p int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(v)
	req.Acks = acks
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = p
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// roundTrip serves the frames in data on a conn without a network and
// returns what it wrote and the error that ended it (io.EOF when every
// frame was served).
func roundTrip(s *Server, data []byte) ([]byte, error) {
	var out bytes.Buffer
	c := newConnIO(s, nil, bytes.NewReader(data), &out)
	defer c.cancel()
	var err error
	for err == nil {
		err = c.serveOne()
	}
	c.w.Flush()
	return out.Bytes(), err
}

// serveOne reads, handles and answers one request, without the pipelining
// of serve: for tests that feed a conn bytes without a network.
func (c *conn) serveOne() error {
	r, err := c.readOne()
	if err != nil {
		return err
	}
	if r.wait != nil {
		r.wait()
	}
	if r.resp == nil {
		return nil
	}
	return c.write(r.h, r.resp)
}
