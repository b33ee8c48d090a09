package tests

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/server"
)

// Bad input at the network edge: each gets a clear error, to that client
// alone, and the server goes on serving.

func TestEdgeErrors(t *testing.T) {
	_, base := startServer(t, func(c *server.Config) { c.MaxRequestBytes = 64 << 10 })
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "small", "config": map[string]any{"maxMessageBytes": 100}})

	for _, tc := range []struct {
		name      string
		procedure string
		req       any
		status    int
		code      string
		says      []string
	}{
		{"unknown topic", "ferry.v1.PublishService/Publish", map[string]any{"topic": "nope", "messages": []any{map[string]any{"text": "x"}}},
			404, "not_found", []string{"unknown topic", `"nope"`}},
		{"message over the topic's limit", "ferry.v1.PublishService/Publish", map[string]any{"topic": "small", "messages": []any{map[string]any{"text": strings.Repeat("x", 200)}}},
			400, "invalid_argument", []string{"too large", "limit 100"}},
		{"request over the server's limit", "ferry.v1.PublishService/Publish", map[string]any{"topic": "small", "messages": []any{map[string]any{"text": strings.Repeat("x", 100<<10)}}},
			429, "resource_exhausted", []string{"65536"}},
		{"no messages", "ferry.v1.PublishService/Publish", map[string]any{"topic": "small"},
			400, "invalid_argument", []string{"no messages"}},
		{"bad topic name", "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "a/b"},
			400, "invalid_argument", []string{"invalid name"}},
		{"topic exists", "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "small"},
			409, "already_exists", []string{"small"}},
		{"subscription without a kind", "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{"topic": "small", "name": "s"},
			400, "invalid_argument", []string{"kind"}},
		{"unknown subscription", "ferry.v1.ConsumeService/Receive", map[string]any{"topic": "small", "subscription": "ghost"},
			404, "not_found", []string{"ghost"}},
		{"read past the end", "ferry.v1.ReadService/Read", map[string]any{"topic": "small", "offset": 99},
			400, "out_of_range", []string{"out of range"}},
		{"unknown partition", "ferry.v1.ReadService/Read", map[string]any{"topic": "small", "partition": 7},
			404, "not_found", []string{"partition"}},
		{"unknown consumer", "ferry.v1.ConsumeService/Grant", map[string]any{"consumerId": "feed", "credit": 1},
			404, "not_found", []string{"feed"}},
		{"ack without a consumer", "ferry.v1.ConsumeService/Ack", map[string]any{"deliveryIds": []any{"x"}},
			400, "invalid_argument", []string{"consumer_id"}},
		{"JSON of the wrong shape", "ferry.v1.TopicService/CreateTopic", map[string]any{"name": 12},
			400, "invalid_argument", nil},
		{"unknown field", "ferry.v1.TopicService/CreateTopic", map[string]any{"nmae": "x"},
			400, "invalid_argument", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := call(t, base, tc.procedure, tc.req)
			if status != tc.status || out["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, out, tc.status, tc.code)
			}
			msg, _ := out["message"].(string)
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
		})
	}

	// Not JSON at all, a wrong content type, an unknown procedure.
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
	}{
		{"garbage body", "/ferry.v1.TopicService/ListTopics", "application/json", "{not json", 400},
		{"binary garbage", "/ferry.v1.TopicService/ListTopics", "application/proto", "\xff\xff\xff", 400},
		{"unsupported content type", "/ferry.v1.TopicService/ListTopics", "text/plain", "hi", 415},
		{"unknown procedure", "/ferry.v1.TopicService/Nope", "application/json", "{}", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(base+tc.path, tc.ctype, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	// Still serving.
	mustCall(t, base, "ferry.v1.TopicService/ListTopics", map[string]any{})
}

func TestEdgeTooManyStreams(t *testing.T) {
	_, base := startServer(t, func(c *server.Config) { c.MaxStreams = 2 })
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "t"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var open []*jsonStream
	for range 2 {
		st := openStream(t, ctx, base, "ferry.v1.ConsumeService/Subscribe", map[string]any{"pattern": "t", "credit": 10})
		if _, err := st.next(); err != nil {
			t.Fatal(err)
		}
		open = append(open, st)
	}
	third := openStream(t, ctx, base, "ferry.v1.ConsumeService/Subscribe", map[string]any{"pattern": "t", "credit": 10})
	if _, err := third.next(); err == nil || !strings.Contains(err.Error(), "resource_exhausted") || !strings.Contains(err.Error(), "limit 2") {
		t.Fatalf("third stream: %v", err)
	}
	// Closing one frees its place.
	open[0].resp.Body.Close()
	waitFor(t, 10*time.Second, func() bool {
		st := openStream(t, ctx, base, "ferry.v1.ConsumeService/Subscribe", map[string]any{"pattern": "t", "credit": 10})
		_, err := st.next()
		st.resp.Body.Close()
		return err == nil
	})
}

// A subscriber that stops reading is cut off after the send timeout, and
// its place is free again; the server's memory stays bounded by its credit.
func TestEdgeClientStopsReading(t *testing.T) {
	_, base := startServer(t, func(c *server.Config) {
		c.MaxStreams = 1
		c.SendTimeout = server.Duration{Duration: 300 * time.Millisecond}
	})
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "t", "config": map[string]any{"maxMessageBytes": 2 << 20, "fsync": "never"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stuck := openStream(t, ctx, base, "ferry.v1.ConsumeService/Subscribe", map[string]any{"pattern": "t", "credit": 10000})
	if _, err := stuck.next(); err != nil {
		t.Fatal(err)
	}
	// Never read stuck again. Publish far more than the socket buffers hold.
	big := strings.Repeat("x", 1<<20)
	for range 64 {
		mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "t", "messages": []any{map[string]any{"text": big}}})
	}
	waitFor(t, 20*time.Second, func() bool {
		st := openStream(t, ctx, base, "ferry.v1.ConsumeService/Subscribe", map[string]any{"pattern": "t", "credit": 1})
		_, err := st.next()
		st.resp.Body.Close()
		return err == nil
	})
}

// gRPC and gRPC-Web clients reach the same API over unencrypted HTTP/2.
func TestGRPCClient(t *testing.T) {
	_, base := startServer(t)
	hc := h2cClient()
	topics := ferryv1connect.NewTopicServiceClient(hc, base, connect.WithGRPC())
	pub := ferryv1connect.NewPublishServiceClient(hc, base, connect.WithGRPC())
	rd := ferryv1connect.NewReadServiceClient(hc, base, connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "g"})); err != nil {
		t.Fatal(err)
	}
	_, err := topics.DescribeTopic(ctx, connect.NewRequest(&ferryv1.DescribeTopicRequest{Name: "missing"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("describe missing: %v", err)
	}
	// The bidi publish stream: three batches sent without waiting, three
	// acknowledgements by sequence, a bad batch failing alone.
	st := pub.PublishStream(ctx)
	for i, v := range []string{"one", strings.Repeat("x", 2<<20), "three"} {
		if err := st.Send(&ferryv1.PublishStreamRequest{Sequence: uint64(i + 1), Topic: "g", Messages: []*ferryv1.PublishMessage{{Value: []byte(v)}}}); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseRequest()
	var acks []*ferryv1.PublishStreamResponse
	for {
		r, err := st.Receive()
		if err != nil {
			break
		}
		acks = append(acks, r)
	}
	st.CloseResponse()
	if len(acks) != 3 || acks[0].Sequence != 1 || acks[0].Error != nil || acks[1].Error.GetCode() != "invalid_argument" || acks[2].Error != nil {
		t.Fatalf("acks %v", acks)
	}
	// gRPC-Web, as a browser's client speaks it, reaches the same calls.
	web := ferryv1connect.NewTopicServiceClient(hc, base, connect.WithGRPCWeb())
	list, err := web.ListTopics(ctx, connect.NewRequest(&ferryv1.ListTopicsRequest{}))
	if err != nil || len(list.Msg.Topics) != 1 || list.Msg.Topics[0].Name != "g" {
		t.Fatalf("gRPC-Web list: %v, %v", list, err)
	}
	res, err := rd.Read(ctx, connect.NewRequest(&ferryv1.ReadRequest{Topic: "g", Start: &ferryv1.ReadRequest_Earliest{Earliest: true}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Msg.Messages) != 2 || !bytes.Equal(res.Msg.Messages[1].Value, []byte("three")) {
		t.Fatalf("read %v", res.Msg.Messages)
	}
}

func h2cClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The keyless batches of one publish stream spread over the partitions,
// one partition per batch, although the server stores them together.
func TestPublishStreamSpreadsKeylessBatches(t *testing.T) {
	_, base := startServer(t)
	hc := h2cClient()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	pub := ferryv1connect.NewPublishServiceClient(hc, base)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "s", Config: &ferryv1.TopicConfig{Partitions: 4}})); err != nil {
		t.Fatal(err)
	}
	st := pub.PublishStream(ctx)
	for i := range 40 {
		msgs := []*ferryv1.PublishMessage{{Value: []byte("a")}, {Value: []byte("b")}}
		if err := st.Send(&ferryv1.PublishStreamRequest{Sequence: uint64(i), Topic: "s", Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseRequest()
	perPartition := map[int32]int{}
	for range 40 {
		r, err := st.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Results) != 2 || r.Results[0].Partition != r.Results[1].Partition || r.Results[1].Offset != r.Results[0].Offset+1 {
			t.Fatalf("batch %d split: %v", r.Sequence, r.Results)
		}
		perPartition[r.Results[0].Partition]++
	}
	st.CloseResponse()
	for p := range int32(4) {
		if perPartition[p] != 10 {
			t.Fatalf("batches per partition %v, want 10 each", perPartition)
		}
	}
}
