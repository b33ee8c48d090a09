package native

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferrymq/ferry/engine"
)

// unaryProcedures are the calls FuzzUnary throws bytes at.
var unaryProcedures = []string{
	"/ferry.v1.TopicService/CreateTopic",
	"/ferry.v1.TopicService/AlterTopic",
	"/ferry.v1.TopicService/AddPartitions",
	"/ferry.v1.TopicService/DescribeTopic",
	"/ferry.v1.SubscriptionService/CreateSubscription",
	"/ferry.v1.SubscriptionService/SeekSubscription",
	"/ferry.v1.PublishService/Publish",
	"/ferry.v1.ConsumeService/Receive",
	"/ferry.v1.ConsumeService/Ack",
	"/ferry.v1.ConsumeService/Nack",
	"/ferry.v1.ConsumeService/Extend",
	"/ferry.v1.ConsumeService/Commit",
	"/ferry.v1.ConsumeService/Grant",
	"/ferry.v1.ReadService/Read",
	"/ferry.v1.SubscriptionService/PurgeSubscription",
}

// FuzzUnary sends arbitrary bodies, as protobuf or JSON, to every unary
// call: the service must answer each (never panic, never hang), and keep
// serving a valid request afterwards.
func FuzzUnary(f *testing.F) {
	f.Add(uint8(0), false, []byte(`{"name":"t","config":{"partitions":2}}`))
	f.Add(uint8(1), false, []byte(`{"name":"t","retention":{"maxAge":"1h"},"fsync":"interval:10ms"}`))
	f.Add(uint8(2), false, []byte(`{"name":"t","partitions":-4}`))
	f.Add(uint8(4), false, []byte(`{"topic":"t","name":"s","config":{"kind":"SUBSCRIPTION_KIND_QUEUE","ackDeadline":"-5s"}}`))
	f.Add(uint8(5), false, []byte(`{"topic":"t","name":"s","partition":-1,"time":"1970-01-01T00:00:00Z"}`))
	f.Add(uint8(6), false, []byte(`{"topic":"t","partition":99,"messages":[{"text":"x","deliverAt":"9999-12-31T23:59:59Z"}]}`))
	f.Add(uint8(7), false, []byte(`{"topic":"t","subscription":"s","maxMessages":2147483647,"wait":"-1s"}`))
	f.Add(uint8(9), false, []byte(`{"topic":"t","subscription":"s","deliveryIds":["0-0-1"],"delay":"315576000000s"}`))
	f.Add(uint8(8), false, []byte(`{"topic":"t","subscription":"s","refs":[{"partition":0,"offsets":["1","2"],"counts":[1]}]}`))
	f.Add(uint8(8), false, []byte(`{"topic":"t","subscription":"s","refs":[{"partition":-7,"offsets":["-1"],"counts":[0]}],"deliveryIds":["x"]}`))
	f.Add(uint8(13), false, []byte(`{"topic":"t","partition":0,"offset":"-9223372036854775808","maxBytes":-1}`))
	f.Add(uint8(14), false, []byte(`{"topic":"t","name":"q"}`))
	f.Add(uint8(14), false, []byte(`{"topic":"t","name":""}`))
	f.Add(uint8(14), true, []byte("\x0a\x01t\x12\x01q"))
	f.Add(uint8(6), true, []byte("\x0a\x01t\x1a\x03\x12\x01x"))
	f.Add(uint8(0), true, []byte("\x0a\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, which uint8, binary bool, body []byte) {
		b, err := engine.Open(engine.Options{Dir: t.TempDir(), DefaultFsync: "never"})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.CreateTopic(context.Background(), "t", engine.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		// A queue subscription with a message, for the purge to settle.
		if _, err := b.CreateSubscription(context.Background(), "t", "q", engine.SubscriptionConfig{Kind: engine.KindQueue}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(context.Background(), "t", engine.Message{Value: []byte("m")}); err != nil {
			t.Fatal(err)
		}
		s := New(b, Options{MaxWait: 10 * time.Millisecond})
		defer s.Drain()
		mux := http.NewServeMux()
		s.Mount(mux)

		ctype := "application/json"
		if binary {
			ctype = "application/proto"
		}
		proc := unaryProcedures[int(which)%len(unaryProcedures)]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", proc, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code == 0 || rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %q: status %d: %s", proc, body, rec.Code, rec.Body)
		}

		// Still serving.
		req = httptest.NewRequestWithContext(ctx, "POST", "/ferry.v1.TopicService/DescribeTopic", bytes.NewReader([]byte(`{"name":"t"}`)))
		req.Header.Set("Content-Type", "application/json")
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("describe after %s %q: %d %s", proc, body, rec.Code, rec.Body)
		}
	})
}
