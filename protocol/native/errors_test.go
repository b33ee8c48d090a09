package native

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/engine"
)

// TestOnErrorReportsCodes: a unary call and a stream that fail report
// their Connect code once each; a call that succeeds reports nothing.
func TestOnErrorReportsCodes(t *testing.T) {
	b, err := engine.Open(engine.Options{Dir: t.TempDir(), DefaultFsync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var mu sync.Mutex
	var got []string
	s := New(b, Options{OnError: func(code string) {
		mu.Lock()
		got = append(got, code)
		mu.Unlock()
	}})
	mux := http.NewServeMux()
	s.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer s.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	topics := ferryv1connect.NewTopicServiceClient(srv.Client(), srv.URL)
	if _, err := topics.ListTopics(ctx, connect.NewRequest(&ferryv1.ListTopicsRequest{})); err != nil {
		t.Fatal(err)
	}
	if _, err := topics.DescribeTopic(ctx, connect.NewRequest(&ferryv1.DescribeTopicRequest{Name: "nope"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("describe an unknown topic: %v", err)
	}
	consume := ferryv1connect.NewConsumeServiceClient(srv.Client(), srv.URL)
	st, err := consume.ConsumeStream(ctx, connect.NewRequest(&ferryv1.ConsumeStreamRequest{Topic: "nope", Subscription: "s", Credit: 1}))
	if err != nil {
		t.Fatal(err)
	}
	for st.Receive() {
	}
	if connect.CodeOf(st.Err()) != connect.CodeNotFound {
		t.Fatalf("consume an unknown topic: %v", st.Err())
	}
	st.Close()

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"not_found", "not_found"}; !slices.Equal(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}
}
