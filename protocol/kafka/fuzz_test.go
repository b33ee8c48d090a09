package kafka

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/storage/record"
)

// The seed corpora of the fuzz targets below are in
// testdata/fuzz/<target>/, written by TestFuzzSeeds with
// FERRY_WRITE_FUZZ_SEEDS=1; `go test` runs them every time. To fuzz:
//
//	go test -run '^$' -fuzz FuzzRequest ./protocol/kafka/
//	go test -run '^$' -fuzz FuzzDecodeProduce ./protocol/kafka/

// fuzzLimit is the request limit of the fuzzed server: small, so that
// decompression bombs are cheap to find and refuse.
const fuzzLimit = 64 << 10

// FuzzRequest feeds bytes to a connection as if a client sent them:
// framing, the request header, kmsg decoding, and each served API's
// handler (produce decoding and decompression included), over a real
// engine. It must never panic; a connection ends only at the end of the
// bytes or with a clear framing error; what it writes is well-formed
// response frames.
func FuzzRequest(f *testing.F) {
	s := testServer(f, Options{MaxRequestBytes: fuzzLimit})
	for _, seed := range requestSeeds() {
		f.Add(seed.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		c := newConnIO(s, nil, bytes.NewReader(data), &out)
		defer c.cancel()
		// Fetch would wait for data up to the request's max_wait_ms.
		fetch := c.apis[kmsg.Fetch.Int16()]
		handle := fetch.handle
		fetch.handle = func(c *conn, req kmsg.Request) (kmsg.Response, error) {
			req.(*kmsg.FetchRequest).MaxWaitMillis = 0
			return handle(c, req)
		}
		c.apis[kmsg.Fetch.Int16()] = fetch
		var err error
		served := 0
		for ; served < 8 && err == nil; served++ {
			err = c.serveOne()
		}
		c.w.Flush() // responses past the writer's buffer are in out only then
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errFrame) {
			t.Fatalf("connection ended with %v, not a framing error", err)
		}
		b := out.Bytes()
		for n := 0; len(b) > 0; n++ {
			if n == served || len(b) < 8 {
				t.Fatalf("response %d of %d requests, %d bytes left", n+1, served, len(b))
			}
			size := int(binary.BigEndian.Uint32(b))
			if size < 4 || size > len(b)-4 {
				t.Fatalf("response frame of %d bytes, %d left", size, len(b)-4)
			}
			b = b[4+size:]
		}
	})
}

// FuzzDecodeProduce feeds a partition's records to decodeProduce, with
// the batches' CRCs set right when fixCRC (so that mutations reach the
// decompressors and the record decoder). It must never panic, never
// inflate past its budget, refuse with an error that has its own Kafka
// code, and what it accepts must be uncompressed batches with their CRCs
// right, the same batch by batch: each prefix of whole batches gives a
// prefix of the batches.
func FuzzDecodeProduce(f *testing.F) {
	for _, seed := range produceSeeds() {
		f.Add(seed.data, seed.fixCRC)
	}
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		var ends []int // the end of each whole batch
		for off := 0; off+record.HeaderSize <= len(data); {
			h, err := record.ParseHeader(data[off:])
			if err != nil || h.Size() < record.HeaderSize || h.Size() > len(data)-off {
				break
			}
			if fixCRC {
				b := data[off : off+h.Size()]
				binary.BigEndian.PutUint32(b[17:], record.Checksum(b))
			}
			off += h.Size()
			ends = append(ends, off)
		}
		budget := fuzzLimit
		d, err := decodeProduce(data, &budget)
		if budget < 0 {
			t.Fatalf("inflated %d bytes past the budget", -budget)
		}
		if err != nil {
			if code := errorCode(err); code == kerr.UnknownServerError.Code {
				t.Fatalf("refused without a Kafka error code of its own: %v", err)
			}
			return
		}
		whole := len(data) == 0 || len(ends) > 0 && ends[len(ends)-1] == len(data)
		if !whole || len(d.batches) != len(ends) {
			t.Fatalf("accepted %d batches, %d whole batches in %d bytes", len(d.batches), len(ends), len(data))
		}
		if d.producerID >= 0 && len(d.seqs) != len(ends) {
			t.Fatalf("%d sequences for %d batches", len(d.seqs), len(ends))
		}
		for i, b := range d.batches {
			// What goes to the log is an uncompressed batch with its CRC
			// right; the log checks its records.
			h, err := record.Verify(b)
			if err != nil || h.Compression() != record.CompressionNone {
				t.Fatalf("batch %d handed on as %v compressed, %v", i, h.Compression(), err)
			}
		}
		for i := 0; i+1 < len(ends); i++ {
			end := ends[i]
			budget := fuzzLimit
			p, err := decodeProduce(data[:end], &budget)
			if err != nil || !reflect.DeepEqual(p.batches, d.batches[:i+1]) {
				t.Fatalf("the first %d batches decode differently alone: %v", i+1, err)
			}
		}
	})
}

type seed struct {
	name   string
	data   []byte
	fixCRC bool
}

// requestSeeds are request streams: valid requests of every served key at
// several versions (produce with each codec), versions and keys not
// served, and broken frames.
func requestSeeds() []seed {
	var seeds []seed
	add := func(name string, reqs ...kmsg.Request) {
		var b []byte
		for i, r := range reqs {
			b = append(b, frame(r, int32(i+1))...)
		}
		seeds = append(seeds, seed{name: name, data: b})
	}
	versioned := func(r kmsg.Request, v int16) kmsg.Request { r.SetVersion(v); return r }
	for _, v := range []int16{0, 3} {
		add(fmt.Sprintf("apiversions-v%d", v), versioned(kmsg.NewPtrApiVersionsRequest(), v))
	}
	meta := func(v int16) kmsg.Request {
		r := kmsg.NewPtrMetadataRequest()
		r.SetVersion(v)
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr("t")
		r.Topics = append(r.Topics, t)
		return r
	}
	add("metadata-v1", meta(1))
	add("metadata-v12", meta(12))
	add("metadata-v9-all", versioned(kmsg.NewPtrMetadataRequest(), 9))
	for i, c := range codecs {
		add("produce-v9-"+c.name, produceRequest(9, -1, int32(i%3), testBatch(3, -1, 0, i)))
	}
	add("produce-v3-acks1", produceRequest(3, 1, 1, testBatch(2, -1, 0, 0)))
	add("produce-v7-acks0", produceRequest(7, 0, 2, testBatch(2, -1, 0, 2)))
	add("produce-v9-idempotent", produceRequest(9, -1, 0, testBatch(2, 1, 0, 5)))
	add("produce-v9-two-batches", produceRequest(9, -1, 0, append(testBatch(2, -1, 0, 0), testBatch(2, -1, 0, 1)...)))
	fetch := func(v int16) kmsg.Request {
		r := kmsg.NewPtrFetchRequest()
		r.SetVersion(v)
		r.MaxBytes, r.MinBytes = 1<<20, 1
		t := kmsg.NewFetchRequestTopic()
		t.Topic = "t"
		for p := range int32(3) {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.PartitionMaxBytes = p, 1<<20
			t.Partitions = append(t.Partitions, fp)
		}
		r.Topics = append(r.Topics, t)
		return r
	}
	add("fetch-v4", fetch(4))
	add("fetch-v12", fetch(12))
	listOffsets := func(v int16) kmsg.Request {
		r := kmsg.NewPtrListOffsetsRequest()
		r.SetVersion(v)
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = "t"
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Timestamp = -1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	}
	add("listoffsets-v1", listOffsets(1))
	add("listoffsets-v7", listOffsets(7))
	for _, v := range []int16{0, 2, 4} {
		r := kmsg.NewPtrInitProducerIDRequest()
		r.SetVersion(v)
		add(fmt.Sprintf("initproducerid-v%d", v), r)
	}
	tx := kmsg.NewPtrInitProducerIDRequest()
	tx.SetVersion(4)
	tx.TransactionalID = kmsg.StringPtr("tx")
	add("initproducerid-transactional", tx)
	add("pipelined", versioned(kmsg.NewPtrApiVersionsRequest(), 3), meta(12), produceRequest(9, 1, 0, testBatch(1, -1, 0, 4)), fetch(12))
	// Not served: a newer ApiVersions (answered at v0), a key kmsg knows
	// but the broker does not serve, an old Produce.
	add("apiversions-v99", versioned(kmsg.NewPtrApiVersionsRequest(), 99))
	add("findcoordinator-v1", versioned(kmsg.NewPtrFindCoordinatorRequest(), 1))
	add("produce-v2", produceRequest(2, 1, 0, testBatch(1, -1, 0, 0)))
	unknown := frame(versioned(kmsg.NewPtrApiVersionsRequest(), 0), 1)
	binary.BigEndian.PutUint16(unknown[4:], 1000)
	seeds = append(seeds, seed{name: "unknown-key", data: unknown})
	// Broken frames.
	seeds = append(seeds,
		seed{name: "size-negative", data: []byte{0xff, 0xff, 0xff, 0xf0, 0, 18, 0, 0}},
		seed{name: "size-huge", data: []byte{0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 0}},
		seed{name: "size-short", data: []byte{0, 0, 0, 3, 0, 18, 0}},
		seed{name: "garbage", data: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
	)
	p := frame(produceRequest(9, -1, 0, testBatch(3, -1, 0, 1)), 1)
	seeds = append(seeds, seed{name: "produce-cut-short", data: p[:len(p)-10]})
	body := bytes.Clone(p[:len(p)-10])
	binary.BigEndian.PutUint32(body, uint32(len(body)-4))
	seeds = append(seeds, seed{name: "produce-body-cut-short", data: body})
	return seeds
}

// produceSeeds are partitions' records: a batch of each codec, an
// idempotent one, several, and broken ones.
func produceSeeds() []seed {
	var seeds []seed
	for i, c := range codecs {
		seeds = append(seeds, seed{name: "batch-" + c.name, data: testBatch(3, -1, 0, i), fixCRC: true})
	}
	seeds = append(seeds,
		seed{name: "batch-idempotent", data: testBatch(2, 5, 10, 3), fixCRC: true},
		seed{name: "batches-two", data: append(testBatch(2, 5, 0, 1), testBatch(2, 5, 2, 4)...), fixCRC: true},
		seed{name: "batches-mixed-producers", data: append(testBatch(1, 5, 0, 0), testBatch(1, -1, 0, 0)...), fixCRC: true},
	)
	bad := testBatch(3, -1, 0, 0)
	bad[len(bad)-1] ^= 1
	seeds = append(seeds, seed{name: "crc-bad", data: bad})
	magic1 := testBatch(1, -1, 0, 0)
	magic1[16] = 1
	seeds = append(seeds, seed{name: "magic-1", data: magic1, fixCRC: true})
	txn := testBatch(1, 5, 0, 0)
	txn[22] |= 0x10
	seeds = append(seeds, seed{name: "transactional", data: txn, fixCRC: true})
	cut := testBatch(3, -1, 0, 2)
	seeds = append(seeds, seed{name: "cut-short", data: cut[:len(cut)-3]})
	seeds = append(seeds, seed{name: "records-garbage", data: compressBatch(testBatch(3, -1, 0, 0), record.CompressionGzip, func([]byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write([]byte("not records at all"))
		zw.Close()
		return out.Bytes()
	}), fixCRC: true})
	// Bombs: zeros, twice fuzzLimit, in each codec.
	zeros := make([]byte, 2*fuzzLimit)
	for _, c := range codecs[1:] {
		batch := compressBatch(testBatch(1, -1, 0, 0), c.c, func([]byte) []byte { return c.fn(zeros) })
		seeds = append(seeds, seed{name: "bomb-" + c.name, data: batch, fixCRC: true})
	}
	return seeds
}

// TestFuzzSeeds checks that testdata/fuzz holds every seed above (so that
// `go test` runs them); with FERRY_WRITE_FUZZ_SEEDS=1 it writes them.
func TestFuzzSeeds(t *testing.T) {
	write := os.Getenv("FERRY_WRITE_FUZZ_SEEDS") == "1"
	for target, seeds := range map[string][]seed{"FuzzRequest": requestSeeds(), "FuzzDecodeProduce": produceSeeds()} {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			path := filepath.Join(dir, s.name)
			if !write {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("seed %s/%s missing: run FERRY_WRITE_FUZZ_SEEDS=1 go test -run TestFuzzSeeds ./protocol/kafka/", target, s.name)
				}
				continue
			}
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
			if target == "FuzzDecodeProduce" {
				content += fmt.Sprintf("bool(%v)\n", s.fixCRC)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
