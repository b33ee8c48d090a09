package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/vfs"
)

// TestSequencesCheck walks one producer's state on one partition through
// Kafka's sequence rules.
func TestSequencesCheck(t *testing.T) {
	s := &sequences{epoch: -1}
	next := int64(0)
	store := func(b batchSeq) {
		t.Helper()
		if off, _, dup, err := s.check(7, []batchSeq{b}); err != nil || dup {
			t.Fatalf("batch %+v: offset %d dup %v err %v", b, off, dup, err)
		}
		s.record([]batchSeq{b}, []int64{next}, nil)
		next += int64(b.count)
	}
	refused := func(b batchSeq, code int16) {
		t.Helper()
		_, _, dup, err := s.check(7, []batchSeq{b})
		var se *seqError
		if dup || !errors.As(err, &se) || se.code != code {
			t.Fatalf("batch %+v: dup %v err %v, want code %d", b, dup, err, code)
		}
	}
	refused(batchSeq{0, 3, 1}, kerr.OutOfOrderSequenceNumber.Code) // a first batch starts at 0
	refused(batchSeq{0, -1, 1}, kerr.InvalidRecord.Code)
	for i := range 7 { // sequences 0..13, offsets 0..13
		store(batchSeq{0, int32(2 * i), 2})
	}
	for i := 2; i < 7; i++ { // the last five are duplicates
		off, _, dup, err := s.check(7, []batchSeq{{0, int32(2 * i), 2}})
		if err != nil || !dup || off != int64(2*i) {
			t.Fatalf("retry of batch %d: offset %d dup %v err %v", i, off, dup, err)
		}
	}
	refused(batchSeq{0, 2, 2}, kerr.OutOfOrderSequenceNumber.Code)  // too old to know
	refused(batchSeq{0, 12, 1}, kerr.OutOfOrderSequenceNumber.Code) // overlaps, not the same batch
	refused(batchSeq{0, 15, 1}, kerr.OutOfOrderSequenceNumber.Code) // a gap
	// Two batches in one request must follow each other too.
	if _, _, _, err := s.check(7, []batchSeq{{0, 14, 1}, {0, 16, 1}}); err == nil {
		t.Fatal("a gap between two batches of one request passed")
	}
	store(batchSeq{0, 14, 1})
	// A new epoch (bumped by the producer) restarts at 0; the old one is fenced.
	refused(batchSeq{1, 15, 1}, kerr.OutOfOrderSequenceNumber.Code)
	store(batchSeq{1, 0, 1})
	refused(batchSeq{0, 15, 1}, kerr.InvalidProducerEpoch.Code)
	store(batchSeq{1, 1, 1})
	// Sequences wrap from MaxInt32 to 0.
	s = &sequences{epoch: -1}
	s.record([]batchSeq{{0, math.MaxInt32 - 1, 1}}, []int64{0}, nil)
	store(batchSeq{0, math.MaxInt32, 3})
	if s.batches[1].lastSeq != 1 {
		t.Fatalf("last sequence %d after a wrap, want 1", s.batches[1].lastSeq)
	}
	store(batchSeq{0, 2, 1})
}

// TestProducerTableForgets: a producer idle past the timeout is forgotten,
// and past the cap the least recently used goes first.
func TestProducerTableForgets(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tab := newProducerTable(clk, time.Hour, 3)
	a, _ := tab.newID()
	b, _ := tab.newID()
	c, _ := tab.newID()
	if a <= 0 || b != a+1 || c != b+1 {
		t.Fatalf("ids %d %d %d", a, b, c)
	}
	tab.lookup(a) // b is now the least recently used
	d, _ := tab.newID()
	if tab.lookup(b) != nil || tab.lookup(a) == nil || tab.lookup(d) == nil || tab.len() != 3 {
		t.Fatalf("after the cap: b known %v, %d producers", tab.lookup(b) != nil, tab.len())
	}
	clk.Advance(59 * time.Minute)
	if tab.lookup(a) == nil {
		t.Fatal("a forgotten before its time")
	}
	clk.Advance(2 * time.Minute)
	if tab.lookup(c) != nil || tab.lookup(d) != nil {
		t.Fatal("producers idle past the timeout still known")
	}
	if tab.lookup(a) == nil {
		t.Fatal("a, used a minute ago, forgotten")
	}
	clk.Advance(2 * time.Hour)
	tab.newID() // sweeps
	if tab.len() != 1 {
		t.Fatalf("%d producers after a sweep, want 1", tab.len())
	}
	// A later process does not hand out the same ids.
	if later := newProducerTable(clk, time.Hour, 3); later.next <= a+3 {
		t.Fatalf("a process started later starts at id %d, after %d", later.next, a)
	}
}

// responses decodes what a conn wrote, given the requests it answered (in
// order, leaving out those without a response).
func responses(t *testing.T, out []byte, reqs ...kmsg.Request) []kmsg.Response {
	t.Helper()
	var resps []kmsg.Response
	for _, req := range reqs {
		if len(out) < 8 {
			t.Fatalf("%d responses of %d", len(resps), len(reqs))
		}
		n := int(binary.BigEndian.Uint32(out))
		body := out[8 : 4+n]
		out = out[4+n:]
		resp := req.ResponseKind()
		resp.SetVersion(req.GetVersion())
		if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
			body = body[1:]
		}
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("%s response: %v", kmsg.NameForKey(req.Key()), err)
		}
		resps = append(resps, resp)
	}
	if len(out) != 0 {
		t.Fatalf("%d bytes after %d responses", len(out), len(reqs))
	}
	return resps
}

// call sends one request on a conn of its own and returns the response.
func call(t *testing.T, s *Server, req kmsg.Request) kmsg.Response {
	t.Helper()
	out, err := roundTrip(s, frame(req, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return responses(t, out, req)[0]
}

func initProducerID(t *testing.T, s *Server, v int16) int64 {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(v)
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp := call(t, s, req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 || resp.ProducerID < 0 || resp.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId v%d: %+v", v, resp)
	}
	return resp.ProducerID
}

func producePartition(t *testing.T, s *Server, p int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	return call(t, s, produceRequest(9, -1, p, records)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

// TestIdempotentProduce: a retried batch is answered with its offset and
// stored once; gaps, unknown ids and transactional ids are refused.
func TestIdempotentProduce(t *testing.T) {
	s := testServer(t, Options{})
	var ids []int64
	for v := range int16(5) {
		ids = append(ids, initProducerID(t, s, v))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("producer ids not unique: %v", ids)
		}
	}
	pid := ids[0]
	for _, p := range []int32{0, 1} {
		for i := range 3 {
			rp := producePartition(t, s, p, testBatch(4, pid, int32(4*i), i%len(codecs)))
			if rp.ErrorCode != 0 || rp.BaseOffset != int64(4*i) {
				t.Fatalf("partition %d batch %d: %+v", p, i, rp)
			}
		}
		rp := producePartition(t, s, p, testBatch(4, pid, 4, 1)) // a retry of the second batch
		if rp.ErrorCode != 0 || rp.BaseOffset != 4 {
			t.Fatalf("retry: %+v", rp)
		}
		rp = producePartition(t, s, p, testBatch(1, pid, 20, 0))
		if rp.ErrorCode != kerr.OutOfOrderSequenceNumber.Code || rp.ErrorMessage == nil {
			t.Fatalf("a gap: %+v", rp)
		}
	}
	ti, _ := s.b.DescribeTopic("t")
	for _, p := range ti.Partitions[:2] {
		if p.EndOffset != 12 {
			t.Fatalf("partition %+v: want 12 records, each stored once", p)
		}
	}
	if rp := producePartition(t, s, 2, testBatch(1, 12345, 0, 0)); rp.ErrorCode != kerr.UnknownProducerID.Code {
		t.Fatalf("unknown producer id: %+v", rp)
	}
	if rp := producePartition(t, s, 7, testBatch(1, pid, 0, 0)); rp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown partition: %+v", rp)
	}
	mixed := append(testBatch(1, pid, 0, 0), testBatch(1, -1, 0, 0)...)
	if rp := producePartition(t, s, 2, mixed); rp.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("batches of an idempotent producer and of none together: %+v", rp)
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(4)
	req.TransactionalID = kmsg.StringPtr("tx")
	if resp := call(t, s, req).(*kmsg.InitProducerIDResponse); resp.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code || resp.ProducerID != -1 {
		t.Fatalf("transactional InitProducerId: %+v", resp)
	}
}

// TestIdempotentProduceConcurrent: the same batch sent on two connections
// at once is stored once; both get its offset.
func TestIdempotentProduceConcurrent(t *testing.T) {
	s := testServer(t, Options{})
	pid := initProducerID(t, s, 4)
	const rounds = 30
	for i := range rounds {
		batch := testBatch(1, pid, int32(i), 0)
		var outs [2][]byte
		var wg sync.WaitGroup
		for j := range outs {
			wg.Go(func() { outs[j], _ = roundTrip(s, frame(produceRequest(9, -1, 0, batch), 1)) })
		}
		wg.Wait()
		for _, out := range outs {
			rp := responses(t, out, produceRequest(9, -1, 0, nil))[0].(*kmsg.ProduceResponse).Topics[0].Partitions[0]
			if rp.ErrorCode != 0 || rp.BaseOffset != int64(i) {
				t.Fatalf("round %d: %+v", i, rp)
			}
		}
	}
	ti, _ := s.b.DescribeTopic("t")
	if end := ti.Partitions[0].EndOffset; end != rounds {
		t.Fatalf("%d records stored of %d", end, rounds)
	}
}

// TestIdempotentRetryAfterFailedSync: a batch placed in the log whose
// fsync fails is answered with an error, and its retry is not answered as
// stored (the log dropped it): the producer is forgotten, so the client
// starts again with a new id, and the partition holds nothing of it.
func TestIdempotentRetryAfterFailedSync(t *testing.T) {
	fs := vfs.NewFaulty(vfs.Default)
	b, err := engine.Open(engine.Options{Dir: t.TempDir(), DefaultFsync: "always", FS: fs, FolderCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic(context.Background(), "t", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	s := New(b, Options{})
	t.Cleanup(func() {
		s.Close()
		b.Close()
	})
	pid := initProducerID(t, s, 4)
	fs.Add(vfs.Rule{Op: vfs.OpSync, PathContains: ".log", Err: vfs.ErrNoSpace, Count: 1})
	if rp := producePartition(t, s, 0, testBatch(2, pid, 0, 0)); rp.ErrorCode == 0 {
		t.Fatalf("a produce whose fsync failed was answered %+v", rp)
	}
	rp := producePartition(t, s, 0, testBatch(2, pid, 0, 0))
	if rp.ErrorCode != kerr.UnknownProducerID.Code {
		t.Fatalf("the retry was answered %+v, want UNKNOWN_PRODUCER_ID", rp)
	}
	if ti, _ := b.DescribeTopic("t"); ti.Partitions[0].EndOffset != 0 {
		t.Fatalf("partition ends at %d after a failed fsync", ti.Partitions[0].EndOffset)
	}
	again := initProducerID(t, s, 4)
	if rp := producePartition(t, s, 0, testBatch(2, again, 0, 0)); rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("a new producer's batch: %+v", rp)
	}
}

// TestProduceAcksZeroWakesConsumers: a produce with acks 0 gets no answer,
// but its batches still count as published: a consumer waiting on the
// topic gets them at once.
func TestProduceAcksZeroWakesConsumers(t *testing.T) {
	s := testServer(t, Options{})
	e, err := s.b.SubscribeEphemeral("t", engine.EphemeralOptions{Buffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		ms, _ := e.Receive(ctx, 10)
		got <- len(ms)
	}()
	time.Sleep(50 * time.Millisecond) // the receiver waits
	out, err := roundTrip(s, frame(produceRequest(9, 0, 1, testBatch(2, -1, 0, 0)), 1))
	if !errors.Is(err, io.EOF) || len(out) != 0 {
		t.Fatalf("acks 0 answered %d bytes, %v", len(out), err)
	}
	if n := <-got; n != 2 {
		t.Fatalf("the waiting consumer got %d records, want 2", n)
	}
}

// TestIdempotentStateFollowsTheTopic: a topic deleted and created again
// under the same name does not inherit an idempotent producer's sequences
// (its first batch there starts at 0 again, as on any new partition).
func TestIdempotentStateFollowsTheTopic(t *testing.T) {
	s := testServer(t, Options{})
	pid := initProducerID(t, s, 4)
	for i := range 3 {
		if rp := producePartition(t, s, 0, testBatch(1, pid, int32(i), 0)); rp.ErrorCode != 0 {
			t.Fatalf("batch %d: %+v", i, rp)
		}
	}
	ctx := context.Background()
	if err := s.b.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.b.CreateTopic(ctx, "t", engine.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	// A retry of a batch stored in the old topic is not answered as
	// stored: the new topic holds nothing.
	if rp := producePartition(t, s, 0, testBatch(1, pid, 2, 0)); rp.ErrorCode == 0 {
		t.Fatalf("a batch of the deleted topic was answered as stored: %+v", rp)
	}
	if rp := producePartition(t, s, 0, testBatch(1, pid, 0, 0)); rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("the new topic's first batch: %+v", rp)
	}
}
