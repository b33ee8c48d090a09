package tests

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/server"
	"github.com/ferrymq/ferry/storage/record"
)

// rawKafka is a Kafka connection driven by hand: requests built with kmsg,
// or any bytes at all.
type rawKafka struct {
	nc   net.Conn
	corr int32
}

func dialKafka(t *testing.T, addr string) *rawKafka {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawKafka{nc: nc}
}

// write sends bytes as they are.
func (r *rawKafka) write(t *testing.T, b []byte) {
	t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// frame is req as a client sends it: size, header (client id "raw"), body.
func (r *rawKafka) frame(req kmsg.Request) []byte {
	r.corr++
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(r.corr))
	b = binary.BigEndian.AppendUint16(b, 3)
	b = append(b, "raw"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// read reads the next response into resp (its version set by the caller)
// and checks its correlation id.
func (r *rawKafka) read(t *testing.T, resp kmsg.Response) {
	t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(r.nc, size[:]); err != nil {
		t.Fatalf("read a %s response: %v", kmsg.NameForKey(resp.Key()), err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.nc, b); err != nil {
		t.Fatalf("read a %s response: %v", kmsg.NameForKey(resp.Key()), err)
	}
	if corr := int32(binary.BigEndian.Uint32(b)); corr != r.corr {
		t.Fatalf("correlation id %d, want %d", corr, r.corr)
	}
	b = b[4:]
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		b = b[1:] // no tags in the header
	}
	if err := resp.ReadFrom(b); err != nil {
		t.Fatalf("decode a %s response: %v", kmsg.NameForKey(resp.Key()), err)
	}
}

// request sends req and returns its response.
func (r *rawKafka) request(t *testing.T, req kmsg.Request) kmsg.Response {
	t.Helper()
	r.write(t, r.frame(req))
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	r.read(t, resp)
	return resp
}

// produce sends records to one partition (Produce v9, acks all) and
// returns the partition's answer.
func (r *rawKafka) produce(t *testing.T, topic string, partition int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := r.request(t, req).(*kmsg.ProduceResponse)
	return resp.Topics[0].Partitions[0]
}

// expectClosed waits for the broker to close the connection.
func (r *rawKafka) expectClosed(t *testing.T) {
	t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, r.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %d bytes", n)
	}
}

// kafkaBatch is a batch of records with these values, for producer pid
// (none when -1) at epoch and base sequence seq.
func kafkaBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	var b record.Builder
	if pid >= 0 {
		b.SetProducer(pid, epoch, seq)
	}
	for _, v := range values {
		b.Add(record.Record{Timestamp: time.Now().UnixMilli(), Value: []byte(v)})
	}
	return bytes.Clone(b.Build())
}

// gzipBatch is a batch whose records section is gzipped (not a valid
// records section when inflated: it is refused before that matters).
func gzipBatch(gz []byte) []byte {
	b := append(kafkaBatch(-1, 0, 0, "x")[:record.HeaderSize], gz...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-record.LogOverhead))
	binary.BigEndian.PutUint16(b[21:], uint16(record.CompressionGzip))
	binary.BigEndian.PutUint32(b[17:], record.Checksum(b))
	return b
}

// zerosGzip is n MiB of zeros gzipped, built without compressing them all:
// after the first MiB, each further MiB compresses to the same bytes.
func zerosGzip(n int) []byte {
	mib := make([]byte, 1<<20)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(mib)
	zw.Flush()
	out := bytes.Clone(buf.Bytes())
	buf.Reset()
	zw.Write(mib)
	zw.Flush()
	next := bytes.Clone(buf.Bytes())
	buf.Reset()
	zw.Close()
	tail := buf.Bytes()
	crc := crc32.Update(0, crc32.IEEETable, mib)
	for range n - 1 {
		out = append(out, next...)
		crc = crc32.Update(crc, crc32.IEEETable, mib)
	}
	out = append(out, tail[:len(tail)-8]...) // the final block, then our trailer
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, uint32(n<<20))
}

// kafkaValues reads a topic from the start with a new franz-go client
// until it has n records, and returns their values by partition.
func kafkaValues(t *testing.T, addr, topic string, n int) map[int32][]string {
	t.Helper()
	cons := kafkaClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int32][]string{}
	for _, r := range consumeN(t, cons, n) {
		got[r.Partition] = append(got[r.Partition], string(r.Value))
	}
	cons.Close()
	return got
}

// TestKafkaEdgeBadInput: broken frames and requests close their own
// connection or get an error answer; after each, another client's
// connection still works, the broker still takes produces, and what was
// stored is intact.
func TestKafkaEdgeBadInput(t *testing.T) {
	s, base := startServer(t)
	createTopic(t, base, "edge", 1)
	addr := s.KafkaAddr()
	other := dialKafka(t, addr)
	want := []string{}
	stored := func(v string) {
		t.Helper()
		if rp := other.produce(t, "edge", 0, kafkaBatch(-1, 0, 0, v)); rp.ErrorCode != 0 || rp.BaseOffset != int64(len(want)) {
			t.Fatalf("produce %q after bad input: %+v", v, rp)
		}
		want = append(want, v)
	}
	stored("before")
	intact := func(t *testing.T) {
		t.Helper()
		stored("after " + t.Name())
		if got := kafkaValues(t, addr, "edge", len(want)); !slices.Equal(got[0], want) {
			t.Fatalf("stored %q, want %q", got[0], want)
		}
		if ends := endOffsets(t, base, "edge"); ends[0] != int64(len(want)) {
			t.Fatalf("end offset %d, want %d", ends[0], len(want))
		}
	}

	produceFrame := (&rawKafka{}).frame(func() kmsg.Request {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks = -1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "edge"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = kafkaBatch(-1, 0, 0, "never stored", "nor this")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return req
	}())
	bodyCut := bytes.Clone(produceFrame[:len(produceFrame)-20])
	binary.BigEndian.PutUint32(bodyCut, uint32(len(bodyCut)-4))
	unknownKey := (&rawKafka{}).frame(kmsg.NewPtrApiVersionsRequest())
	binary.BigEndian.PutUint16(unknownKey[4:], 1000)

	for _, c := range []struct {
		name  string
		bytes []byte
	}{
		{"negative size", []byte{0xff, 0xff, 0xff, 0xfe, 0, 18, 0, 0, 0, 0, 0, 1}},
		{"huge size", []byte{0x40, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0, 1}},
		{"size below a header", []byte{0, 0, 0, 4, 0, 18, 0, 0}},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: ferry\r\n\r\n")},
		{"garbage in a frame", append([]byte{0, 0, 0, 24}, bytes.Repeat([]byte{0xfe}, 24)...)},
		{"body cut short", bodyCut},
		{"unknown key", unknownKey},
		{"frame cut short", produceFrame[:len(produceFrame)/2]},
	} {
		t.Run(c.name, func(t *testing.T) {
			rk := dialKafka(t, addr)
			rk.write(t, c.bytes)
			if c.name == "frame cut short" {
				rk.nc.(*net.TCPConn).CloseWrite()
			}
			rk.expectClosed(t)
			if resp := other.request(t, kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
				t.Fatalf("another connection after bad input: %+v", resp)
			}
			intact(t)
		})
	}

	t.Run("ApiVersions too new", func(t *testing.T) {
		rk := dialKafka(t, addr)
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(99)
		rk.write(t, rk.frame(req))
		resp := kmsg.NewPtrApiVersionsResponse() // answered at version 0
		rk.read(t, resp)
		if resp.ErrorCode != kerr.UnsupportedVersion.Code || !slices.ContainsFunc(resp.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool {
			return k.ApiKey == kmsg.InitProducerID.Int16() && k.MaxVersion == 4
		}) {
			t.Fatalf("ApiVersions v99: %+v", resp)
		}
		if m := rk.request(t, kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(m.Brokers) != 1 {
			t.Fatalf("Metadata on the same connection: %+v", m)
		}
		intact(t)
	})
	t.Run("API not served", func(t *testing.T) {
		rk := dialKafka(t, addr)
		req := kmsg.NewPtrDescribeClientQuotasRequest()
		req.SetVersion(1)
		if resp := rk.request(t, req).(*kmsg.DescribeClientQuotasResponse); resp.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Fatalf("DescribeClientQuotas: %+v", resp)
		}
		old := kmsg.NewPtrProduceRequest()
		old.SetVersion(2) // below the versions served
		old.Acks = 1
		if resp := rk.request(t, old).(*kmsg.ProduceResponse); len(resp.Topics) != 0 {
			t.Fatalf("Produce v2: %+v", resp)
		}
		if resp := rk.request(t, kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
			t.Fatalf("ApiVersions on the same connection: %+v", resp)
		}
		intact(t)
	})
	t.Run("bad CRC", func(t *testing.T) {
		rk := dialKafka(t, addr)
		b := kafkaBatch(-1, 0, 0, "corrupt", "batch")
		b[len(b)-2] ^= 0x40
		if rp := rk.produce(t, "edge", 0, b); rp.ErrorCode != kerr.CorruptMessage.Code || rp.ErrorMessage == nil {
			t.Fatalf("bad CRC: %+v", rp)
		}
		intact(t)
	})
}

// TestKafkaEdgeDecompressionBomb: a gzip batch of 200 MiB of zeros (200
// KiB on the wire) is refused with MESSAGE_TOO_LARGE once it inflates past
// kafka_max_request_bytes, without the broker allocating the 200 MiB;
// nothing is stored and the broker goes on.
func TestKafkaEdgeDecompressionBomb(t *testing.T) {
	s, base := startServer(t, func(c *server.Config) { c.KafkaMaxRequestBytes = 4 << 20 })
	createTopic(t, base, "bomb", 1)
	bomb := gzipBatch(zerosGzip(200))
	if len(bomb) > 1<<20 {
		t.Fatalf("the bomb is %d bytes on the wire", len(bomb))
	}
	rk := dialKafka(t, s.KafkaAddr())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rp := rk.produce(t, "bomb", 0, bomb)
	runtime.ReadMemStats(&after)
	if rp.ErrorCode != kerr.MessageTooLarge.Code || rp.ErrorMessage == nil {
		t.Fatalf("bomb: %+v", rp)
	}
	t.Logf("refused: %s; %d MiB allocated meanwhile", *rp.ErrorMessage, (after.TotalAlloc-before.TotalAlloc)>>20)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Fatalf("%d MiB allocated to refuse the bomb", alloc>>20)
	}
	if ends := endOffsets(t, base, "bomb"); ends[0] != 0 {
		t.Fatalf("end offset %d after the bomb", ends[0])
	}
	prod := kafkaClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic("bomb"), kgo.ProducerBatchCompression(kgo.GzipCompression()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: bytes.Repeat([]byte("z"), 256<<10)}).FirstErr(); err != nil {
		t.Fatalf("256 KiB gzipped after the bomb: %v", err)
	}
	if got := kafkaValues(t, s.KafkaAddr(), "bomb", 1); len(got[0]) != 1 || len(got[0][0]) != 256<<10 {
		t.Fatal("the 256 KiB did not read back")
	}
}
