package kafka

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/storage/record"
)

// startDoor serves a fresh engine's Kafka door on 127.0.0.1 and returns a
// raw connection to it.
func startDoor(t *testing.T, fsync string) (*engine.Broker, net.Conn) {
	t.Helper()
	b, err := engine.Open(engine.Options{Dir: t.TempDir(), DefaultFsync: fsync})
	if err != nil {
		t.Fatal(err)
	}
	s := New(b, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() {
		nc.Close()
		s.Close()
		b.Close()
	})
	return b, nc
}

// readResponse reads one response frame: its correlation id and body, the
// body parsed into resp (whose version must be set).
func readResponse(t *testing.T, r *bufio.Reader, resp kmsg.Response) int32 {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	corr := int32(binary.BigEndian.Uint32(b))
	b = b[4:]
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		b = b[1:] // empty header tags
	}
	if err := resp.ReadFrom(b); err != nil {
		t.Fatalf("response %d: %v", corr, err)
	}
	return corr
}

// TestPipelinedRequests: requests sent back to back on one connection are
// answered in the order sent, and produce requests waiting for their fsync
// do not let a later request overtake them (fsync=always).
func TestPipelinedRequests(t *testing.T) {
	b, nc := startDoor(t, "always")
	if _, err := b.CreateTopic(context.Background(), "pl", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	var f kmsg.RequestFormatter
	var out []byte
	const produces = 6
	for i := range produces {
		var bl record.Builder
		bl.Add(record.Record{Value: []byte{byte(i)}})
		bl.Add(record.Record{Value: []byte{byte(i)}})
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(7)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "pl"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = bl.Build()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		out = append(out, f.AppendRequest(nil, req, int32(i))...) // it sizes from dst[0]
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(9)
	out = append(out, f.AppendRequest(nil, meta, produces)...)
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	for i := range produces {
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(7)
		if corr := readResponse(t, r, resp); corr != int32(i) {
			t.Fatalf("response %d came as number %d", corr, i)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(2*i) {
			t.Fatalf("produce %d: error %d, base offset %d, want %d", i, p.ErrorCode, p.BaseOffset, 2*i)
		}
	}
	mresp := kmsg.NewPtrMetadataResponse()
	mresp.SetVersion(9)
	if corr := readResponse(t, r, mresp); corr != produces || len(mresp.Brokers) != 1 {
		t.Fatalf("metadata answered as %d with %d brokers", corr, len(mresp.Brokers))
	}
	res, err := b.Read(context.Background(), "pl", 0, 0, engine.ReadOptions{})
	if err != nil || len(res.Messages) != 2*produces {
		t.Fatalf("stored %d messages (%v), want %d", len(res.Messages), err, 2*produces)
	}
	for i, m := range res.Messages {
		if m.Value[0] != byte(i/2) {
			t.Fatalf("message %d holds %d: the batches were stored out of order", i, m.Value[0])
		}
	}
}

// TestGroupBytesOutliveTheRequest: a member's protocol metadata and the
// leader's assignment are kept by the coordinator, not read from the
// connection's request buffer, which the next request overwrites.
func TestGroupBytesOutliveTheRequest(t *testing.T) {
	_, nc := startDoor(t, "never")
	r := bufio.NewReader(nc)
	var f kmsg.RequestFormatter
	send := func(req kmsg.Request, corr int32, resp kmsg.Response) {
		t.Helper()
		if _, err := nc.Write(f.AppendRequest(nil, req, corr)); err != nil {
			t.Fatal(err)
		}
		resp.SetVersion(req.GetVersion())
		if got := readResponse(t, r, resp); got != corr {
			t.Fatalf("answer %d to request %d", got, corr)
		}
	}
	meta, assignment := bytes.Repeat([]byte("M"), 64), bytes.Repeat([]byte("A"), 64)
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(0)
	join.Group, join.SessionTimeoutMillis, join.ProtocolType = "g", 10000, "consumer"
	jp := kmsg.NewJoinGroupRequestProtocol()
	jp.Name, jp.Metadata = "range", meta
	join.Protocols = append(join.Protocols, jp)
	jresp := kmsg.NewPtrJoinGroupResponse()
	send(join, 1, jresp)
	if jresp.ErrorCode != 0 {
		t.Fatalf("join: error %d", jresp.ErrorCode)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.SetVersion(0)
	sync.Group, sync.Generation, sync.MemberID = "g", jresp.Generation, jresp.MemberID
	sa := kmsg.NewSyncGroupRequestGroupAssignment()
	sa.MemberID, sa.MemberAssignment = jresp.MemberID, assignment
	sync.GroupAssignment = append(sync.GroupAssignment, sa)
	sresp := kmsg.NewPtrSyncGroupResponse()
	send(sync, 2, sresp)
	// Another request on the connection, of the same size, fills the
	// buffer with other bytes.
	filler := kmsg.NewPtrMetadataRequest()
	filler.SetVersion(1)
	for range 8 {
		ft := kmsg.NewMetadataRequestTopic()
		ft.Topic = kmsg.StringPtr(string(bytes.Repeat([]byte("z"), 20)))
		filler.Topics = append(filler.Topics, ft)
	}
	send(filler, 3, kmsg.NewPtrMetadataResponse())
	desc := kmsg.NewPtrDescribeGroupsRequest()
	desc.SetVersion(0)
	desc.Groups = []string{"g"}
	dresp := kmsg.NewPtrDescribeGroupsResponse()
	send(desc, 4, dresp)
	if len(dresp.Groups) != 1 || len(dresp.Groups[0].Members) != 1 {
		t.Fatalf("described %+v", dresp.Groups)
	}
	m := dresp.Groups[0].Members[0]
	if !bytes.Equal(m.ProtocolMetadata, meta) || !bytes.Equal(m.MemberAssignment, assignment) {
		t.Fatalf("member metadata %q, assignment %q: overwritten", m.ProtocolMetadata, m.MemberAssignment)
	}
}

// TestAcksZeroFailureClosesConnection: a produce with acks 0 gets no
// answer, so a failed one closes the connection (as Kafka does) for the
// client to notice; a good one keeps it.
func TestAcksZeroFailureClosesConnection(t *testing.T) {
	b, nc := startDoor(t, "never")
	if _, err := b.CreateTopic(context.Background(), "z", engine.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	var f kmsg.RequestFormatter
	produce := func(partition int32, corr int32) {
		var bl record.Builder
		bl.Add(record.Record{Value: []byte("v")})
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(7)
		req.Acks, req.TimeoutMillis = 0, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "z"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = partition, bl.Build()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if _, err := nc.Write(f.AppendRequest(nil, req, corr)); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 1) // stored, no answer
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(1)
	if _, err := nc.Write(f.AppendRequest(nil, meta, 2)); err != nil {
		t.Fatal(err)
	}
	mresp := kmsg.NewPtrMetadataResponse()
	mresp.SetVersion(1)
	if corr := readResponse(t, r, mresp); corr != 2 {
		t.Fatalf("answer %d, want the metadata's 2", corr)
	}
	produce(5, 3) // no partition 5: fails
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after a failed acks-0 produce the connection gave %v, want EOF", err)
	}
	if ti, _ := b.DescribeTopic("z"); ti.Partitions[0].EndOffset != 1 {
		t.Fatalf("partition 0 ends at %d, want 1", ti.Partitions[0].EndOffset)
	}
}
