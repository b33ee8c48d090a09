package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/ferrymq/ferry/client"
)

// configValue is the value of a config in a kadm response ("" when absent).
func configValue(cs []kadm.Config, name string) string {
	for _, c := range cs {
		if c.Key == name && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

// TestKafkaAdminTopics: franz-go's admin client creates a topic with
// configs (which land in Ferry's settings), is refused what Ferry cannot do
// (replication, unknown configs, an existing topic), dry-runs a creation,
// describes topic and broker configs, adds partitions and deletes topics.
func TestKafkaAdminTopics(t *testing.T) {
	s, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(kafkaClient(t, s.KafkaAddr()))
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ptr := func(s string) *string { return &s }
	created, err := adm.CreateTopic(ctx, 3, -1, map[string]*string{
		"retention.ms": ptr("3600000"), "retention.bytes": ptr("10000000"),
		"max.message.bytes": ptr("2048"), "segment.bytes": ptr("1048576"), "cleanup.policy": ptr("delete"),
	}, "adm")
	if err != nil || created.Err != nil {
		t.Fatalf("create: %v %v %s", err, created.Err, created.ErrMessage)
	}
	if created.NumPartitions != 3 || created.ReplicationFactor != 1 || created.Configs["retention.ms"].Value == nil || *created.Configs["retention.ms"].Value != "3600000" {
		t.Fatalf("create answered %+v", created)
	}
	ti, err := c.DescribeTopic(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	cfg := ti.GetConfig()
	if len(ti.GetPartitions()) != 3 || cfg.GetRetention().GetMaxAge().AsDuration() != time.Hour || cfg.GetRetention().GetMaxBytes() != 10000000 ||
		cfg.GetMaxMessageBytes() != 2048 || cfg.GetSegmentBytes() != 1<<20 {
		t.Fatalf("Ferry's settings: %v", ti)
	}

	refused := []struct {
		name    string
		parts   int32
		rf      int16
		configs map[string]*string
		want    *kerr.Error
	}{
		{"adm", 1, 1, nil, kerr.TopicAlreadyExists},
		{"r3", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"p0", 0, 1, nil, kerr.InvalidPartitions},
		{"bad/name", 1, 1, nil, kerr.InvalidTopicException},
		{"cfg1", 1, 1, map[string]*string{"flush.ms": ptr("10")}, kerr.InvalidConfig},
		{"cfg2", 1, 1, map[string]*string{"cleanup.policy": ptr("compact")}, kerr.InvalidConfig},
		{"cfg3", 1, 1, map[string]*string{"retention.ms": ptr("soon")}, kerr.InvalidConfig},
		{"cfg4", 1, 1, map[string]*string{"max.message.bytes": ptr("1000000000")}, kerr.InvalidConfig},
	}
	for _, r := range refused {
		resps, err := adm.CreateTopics(ctx, r.parts, r.rf, r.configs, r.name)
		if err != nil {
			t.Fatal(err)
		}
		resp := resps[r.name]
		if !errors.Is(resp.Err, r.want) || resp.ErrMessage == "" {
			t.Errorf("create %s: %v (%q), want %v with a message", r.name, resp.Err, resp.ErrMessage, r.want)
		}
	}

	dry, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "dry")
	if err != nil {
		t.Fatal(err)
	}
	if r := dry["dry"]; r.Err != nil || r.NumPartitions != 2 {
		t.Fatalf("validate only: %+v", r)
	}
	if _, err := c.DescribeTopic(ctx, "dry"); err == nil {
		t.Fatal("validate_only created the topic")
	}

	rcs, err := adm.DescribeTopicConfigs(ctx, "adm", "nope")
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		switch rc.Name {
		case "adm":
			if rc.Err != nil || configValue(rc.Configs, "retention.ms") != "3600000" || configValue(rc.Configs, "segment.bytes") != "1048576" ||
				configValue(rc.Configs, "cleanup.policy") != "delete" || configValue(rc.Configs, "max.message.bytes") != "2048" {
				t.Fatalf("adm configs: %+v", rc)
			}
		case "nope":
			if !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				t.Fatalf("unknown topic's configs: %v", rc.Err)
			}
		}
	}
	bcs, err := adm.DescribeBrokerConfigs(ctx, 0)
	if err != nil || len(bcs) != 1 || bcs[0].Err != nil {
		t.Fatalf("broker configs: %v %+v", err, bcs)
	}
	if configValue(bcs[0].Configs, "broker.id") != "0" || configValue(bcs[0].Configs, "advertised.listeners") != "PLAINTEXT://"+s.KafkaAddr() {
		t.Fatalf("broker configs: %+v", bcs[0].Configs)
	}

	up, err := adm.UpdatePartitions(ctx, 5, "adm")
	if err != nil || up["adm"].Err != nil {
		t.Fatalf("add partitions: %v %+v", err, up)
	}
	md, err := adm.Metadata(ctx, "adm")
	if err != nil || len(md.Topics["adm"].Partitions) != 5 {
		t.Fatalf("metadata after adding partitions: %v %+v", err, md.Topics["adm"])
	}
	down, err := adm.UpdatePartitions(ctx, 2, "adm")
	if err != nil || !errors.Is(down["adm"].Err, kerr.InvalidPartitions) {
		t.Fatalf("lowering the partition count: %v %+v", err, down)
	}

	del, err := adm.DeleteTopics(ctx, "adm", "nope")
	if err != nil {
		t.Fatal(err)
	}
	if del["adm"].Err != nil || !errors.Is(del["nope"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete: %+v", del)
	}
	if _, err := c.DescribeTopic(ctx, "adm"); err == nil {
		t.Fatal("the deleted topic is still there")
	}
}

// TestKafkaAdminVersions: every version served of each admin API answers
// a client pinned to it.
func TestKafkaAdminVersions(t *testing.T) {
	s, _ := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pinned := func(key kmsg.Key, v int16) *kgo.Client {
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(key.Int16(), v)
		return kafkaClient(t, s.KafkaAddr(), kgo.MaxVersions(vs))
	}
	for v := range int16(8) {
		kc := pinned(kmsg.CreateTopics, v)
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "v"+string(rune('0'+v)), 2, 1
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, kc)
		if err != nil || resp.Version != v || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("CreateTopics v%d: %v %+v", v, err, resp)
		}
		if v >= 5 && (resp.Topics[0].NumPartitions != 2 || len(resp.Topics[0].Configs) == 0) {
			t.Fatalf("CreateTopics v%d: %+v", v, resp.Topics[0])
		}
	}
	for v := range int16(4) {
		req := kmsg.NewPtrCreatePartitionsRequest()
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = "v0", int32(3+v)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, pinned(kmsg.CreatePartitions, v))
		if err != nil || resp.Version != v || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("CreatePartitions v%d: %v %+v", v, err, resp)
		}
	}
	for v := range int16(5) {
		req := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "v0"
		req.Resources = append(req.Resources, rr)
		req.IncludeSynonyms, req.IncludeDocumentation = true, true
		resp, err := req.RequestWith(ctx, pinned(kmsg.DescribeConfigs, v))
		if err != nil || resp.Version != v || len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 || len(resp.Resources[0].Configs) == 0 {
			t.Fatalf("DescribeConfigs v%d: %v %+v", v, err, resp)
		}
	}
	for v := range int16(2) {
		req := kmsg.NewPtrDescribeClusterRequest()
		resp, err := req.RequestWith(ctx, pinned(kmsg.DescribeCluster, v))
		if err != nil || resp.Version != v || resp.ErrorCode != 0 || resp.ClusterID != "ferry" || len(resp.Brokers) != 1 || resp.ControllerID != 0 {
			t.Fatalf("DescribeCluster v%d: %v %+v", v, err, resp)
		}
	}
	for v := range int16(6) {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TopicNames = []string{"v" + string(rune('0'+v))}
		resp, err := req.RequestWith(ctx, pinned(kmsg.DeleteTopics, v))
		if err != nil || resp.Version != v || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("DeleteTopics v%d: %v %+v", v, err, resp)
		}
	}
}
