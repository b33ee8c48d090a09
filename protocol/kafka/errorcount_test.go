package kafka

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestErrorCodesKnowEveryAPI: the error walk knows the response of every
// API served, so a new one cannot go uncounted.
func TestErrorCodesKnowEveryAPI(t *testing.T) {
	s := testServer(t, Options{})
	for key := range s.apis() {
		resp := kmsg.RequestForKey(key).ResponseKind()
		if !errorCodes(resp, func(int16) {}) {
			t.Errorf("errorCodes does not know %s", kmsg.NameForKey(key))
		}
	}
}

// TestOnRequestError: each non-zero code of a response is reported by its
// Kafka name, per partition; a response without errors reports nothing; a
// produce with acks 0 that fails counts too.
func TestOnRequestError(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s := testServer(t, Options{OnRequestError: func(code string) {
		mu.Lock()
		got = append(got, code)
		mu.Unlock()
	}})
	codes := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}

	// A successful produce and list: nothing.
	call(t, s, produceRequest(7, -1, 0, testBatch(1, -1, 0, 0)))
	list := func(topic string, partitions ...int32) *kmsg.ListOffsetsRequest {
		req := kmsg.NewPtrListOffsetsRequest()
		req.SetVersion(1)
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, listLatest
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		return req
	}
	call(t, s, list("t", 0, 1))
	if c := codes(); len(c) != 0 {
		t.Fatalf("successful requests reported %v", c)
	}

	// An unknown topic's two partitions: two codes.
	call(t, s, list("nope", 0, 1))
	want := []string{"UNKNOWN_TOPIC_OR_PARTITION", "UNKNOWN_TOPIC_OR_PARTITION"}
	if c := codes(); !slices.Equal(c, want) {
		t.Errorf("list offsets of an unknown topic reported %v, want %v", c, want)
	}

	// A produce to an unknown topic, acks 1 and acks 0 (no response).
	for _, acks := range []int16{1, 0} {
		req := produceRequest(7, acks, 0, testBatch(1, -1, 0, 0))
		req.Topics[0].Topic = "nope"
		roundTrip(s, frame(req, 1))
		if c := codes(); !slices.Equal(c, want[:1]) {
			t.Errorf("produce acks %d to an unknown topic reported %v, want %v", acks, c, want[:1])
		}
	}
}

// TestOnConnection: a connection accepted reports +1, its end -1.
func TestOnConnection(t *testing.T) {
	deltas := make(chan int, 4)
	s := testServer(t, Options{OnConnection: func(d int) { deltas <- d }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	next := func() int {
		t.Helper()
		select {
		case d := <-deltas:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no connection reported")
			return 0
		}
	}
	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := next(); d != 1 {
		t.Fatalf("accepted: %d, want +1", d)
	}
	nc.Close()
	if d := next(); d != -1 {
		t.Fatalf("ended: %d, want -1", d)
	}
}
