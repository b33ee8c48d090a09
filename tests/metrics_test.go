package tests

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/server"
)

// scrape reads /metrics as Prometheus does and returns every sample by
// its series, written name{label="value",...} with the labels sorted; a
// histogram by its name_count and name_sum.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[seriesName(name+"_count", m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[seriesName(name+"_sum", m.GetLabel())] = m.GetHistogram().GetSampleSum()
				continue
			default:
				continue
			}
			out[seriesName(name, m.GetLabel())] = v
		}
	}
	return out
}

func seriesName(name string, labels []*dto.LabelPair) string {
	var ls []string
	for _, l := range labels {
		ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	slices.Sort(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

// TestMetricsMoveWithTraffic publishes and consumes through the Go client
// and checks, over HTTP, that each series moved by what was done.
func TestMetricsMoveWithTraffic(t *testing.T) {
	_, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "work", client.SubscriptionConfig{Kind: client.KindQueue, MaxDeliveries: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "audit", client.SubscriptionConfig{Kind: client.KindStream, StartAt: client.StartEarliest}); err != nil {
		t.Fatal(err)
	}
	before := scrape(t, base)
	if before[`ferry_topics{}`] != 1 {
		t.Fatalf("ferry_topics = %v before, want 1", before[`ferry_topics{}`])
	}

	if _, err := c.Publish(ctx, "orders",
		client.Message{Value: []byte("a")}, client.Message{Value: []byte("b")}, client.Message{Value: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	q, err := c.ConsumeQueue(ctx, "orders", "work")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Ack a and b; c fails twice and becomes a dead letter.
	for failures := 0; failures < 2; {
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Message.Value) == "c" {
			failures++
			err = d.Nack(ctx, 0)
		} else {
			err = d.Ack(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	work := `{subscription="work",topic="orders"}`
	want := map[string]float64{
		`ferry_published_messages_total{partition="0",topic="orders"}`:                                         3,
		`ferry_published_messages_total{partition="0",topic="orders.work.dlq"}`:                                1,
		`ferry_subscription_deliveries_total` + work:                                                           4,
		`ferry_subscription_redeliveries_total` + work:                                                         1,
		`ferry_subscription_acks_total` + work:                                                                 2,
		`ferry_subscription_nacks_total` + work:                                                                2,
		`ferry_subscription_dead_letters_total` + work:                                                         1,
		`ferry_subscription_in_flight_messages` + work:                                                         0,
		`ferry_subscription_members` + work:                                                                    1,
		`ferry_subscription_backlog_messages{kind="queue",partition="0",subscription="work",topic="orders"}`:   0,
		`ferry_subscription_backlog_messages{kind="stream",partition="0",subscription="audit",topic="orders"}`: 3,
		`ferry_partition_end_offset{partition="0",topic="orders"}`:                                             3,
		`ferry_partition_start_offset{partition="0",topic="orders"}`:                                           0,
		`ferry_topics{}`: 2,
	}
	// Counters move when the broker has done the work; the client's acks
	// are answered by then, but wait with a deadline rather than trust it.
	var after map[string]float64
	var diffs []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		after = scrape(t, base)
		diffs = diffs[:0]
		for s, w := range want {
			if got := after[s] - before[s]; !strings.Contains(s, "_total") {
				got = after[s]
				if _, ok := after[s]; !ok {
					diffs = append(diffs, s+" missing")
				} else if got != w {
					diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", s, got, w))
				}
			} else if got != w {
				diffs = append(diffs, fmt.Sprintf("%s moved by %v, want %v", s, got, w))
			}
		}
		if len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
	if b := after[`ferry_published_bytes_total{partition="0",topic="orders"}`]; b <= 0 {
		t.Errorf("published bytes %v", b)
	}
	if b := after[`ferry_partition_storage_bytes{partition="0",topic="orders"}`]; b <= 0 {
		t.Errorf("storage bytes %v", b)
	}
	if after[`ferry_data_disk_free_bytes{}`] <= 0 || after[`go_goroutines{}`] <= 0 {
		t.Errorf("disk free %v, goroutines %v", after[`ferry_data_disk_free_bytes{}`], after[`go_goroutines{}`])
	}

	// The consumer gone, the subscription has no members.
	q.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n := scrape(t, base)[`ferry_subscription_members`+work]
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members = %v after the consumer closed", n)
		}
	}
}

// TestMetricsFrontDoors opens a connection on each listener and asks each
// door for a topic that does not exist, and checks ferry_connections and
// ferry_request_errors_total move with the right labels.
func TestMetricsFrontDoors(t *testing.T) {
	s, base := startServer(t, func(c *server.Config) { c.KafkaAutoCreateTopics = false })
	before := scrape(t, base) // its keep-alive connection is counted from here on
	waitFor := func(series string, want float64) {
		t.Helper()
		var got float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got = scrape(t, base)[series]; got == want {
				return
			}
		}
		t.Fatalf("%s = %v, want %v", series, got, want)
	}
	httpConns, kafkaConns := `ferry_connections{door="http"}`, `ferry_connections{door="kafka"}`
	if _, ok := before[kafkaConns]; !ok || before[httpConns] < 1 {
		t.Fatalf("before: kafka connections %v (present %v), http %v", before[kafkaConns], ok, before[httpConns])
	}

	// Connections.
	kc := dialKafka(t, s.KafkaAddr())
	waitFor(kafkaConns, before[kafkaConns]+1)
	hc, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(httpConns, before[httpConns]+1)
	hc.Close()
	waitFor(httpConns, before[httpConns])

	// Errors: an unknown topic through each door.
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(1)
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "nope"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := kc.request(t, req).(*kmsg.ListOffsetsResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("list offsets of an unknown topic: code %d", code)
	}
	kafkaErrors := `ferry_request_errors_total{code="UNKNOWN_TOPIC_OR_PARTITION",door="kafka"}`
	waitFor(kafkaErrors, before[kafkaErrors]+1)
	if status, _ := call(t, base, "ferry.v1.TopicService/DescribeTopic", map[string]any{"name": "nope"}); status != http.StatusNotFound {
		t.Fatalf("describe an unknown topic: HTTP %d", status)
	}
	httpErrors := `ferry_request_errors_total{code="not_found",door="http"}`
	waitFor(httpErrors, before[httpErrors]+1)

	kc.nc.Close()
	waitFor(kafkaConns, before[kafkaConns])
}

// TestMetricsKafkaFetched: what Kafka consumers fetch is counted per
// topic: the series exist at 0 once the topic does, move by exactly the
// records a plain partition consumer takes (records before the fetch
// offset in a returned batch not counted), and go with the topic.
func TestMetricsKafkaFetched(t *testing.T) {
	s, c, ctx := kafkaTopic(t, "kf", 2, 30*time.Second)
	base := "http://" + s.Addr()
	msgsSeries, bytesSeries := `ferry_fetched_messages_total{door="kafka",topic="kf"}`, `ferry_fetched_bytes_total{door="kafka",topic="kf"}`
	if m, ok := scrape(t, base)[msgsSeries]; !ok || m != 0 {
		t.Fatalf("%s = %v (present %v) before any fetch", msgsSeries, m, ok)
	}
	var msgs []client.Message
	for i := range 40 {
		msgs = append(msgs, client.Message{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("value")})
	}
	// One batch per partition; then the consumer starts past the first
	// records of partition 0, inside its batch.
	for p := range int32(2) {
		if _, err := c.PublishTo(ctx, "kf", p, msgs[p*20:(p+1)*20]...); err != nil {
			t.Fatal(err)
		}
	}
	kc := kafkaClient(t, s.KafkaAddr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"kf": {0: kgo.NewOffset().At(5), 1: kgo.NewOffset().At(0)}}))
	if got := len(consumeN(t, kc, 35)); got != 35 {
		t.Fatalf("consumed %d records, want 35", got)
	}
	kc.Close()
	m := scrape(t, base)
	if m[msgsSeries] != 35 || m[bytesSeries] <= 0 {
		t.Fatalf("%s = %v (want 35), %s = %v", msgsSeries, m[msgsSeries], bytesSeries, m[bytesSeries])
	}
	if err := c.DeleteTopic(ctx, "kf"); err != nil {
		t.Fatal(err)
	}
	if v, ok := scrape(t, base)[msgsSeries]; ok {
		t.Fatalf("%s = %v after the topic was deleted", msgsSeries, v)
	}
}
