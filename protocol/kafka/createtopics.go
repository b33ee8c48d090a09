package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// CreateTopics (key 19), versions 0-7: creates each topic named, with its
// partition count (-1 for the default, 1) and the configs Ferry
// understands (see configs.go); anything else is INVALID_CONFIG. Ferry
// keeps one copy of each partition, so the replication factor must be 1
// or -1, and a manual replica assignment may only name this broker. With
// validate_only everything is checked and nothing created. From version 5
// a created topic's partitions, replication factor and configs come back.
func handleCreateTopics(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	named := map[string]int{}
	for _, rt := range req.Topics {
		named[rt.Topic]++
	}
	for _, rt := range req.Topics {
		t := kmsg.NewCreateTopicsResponseTopic()
		t.Topic = rt.Topic
		var ti engine.TopicInfo
		cfg, code, err := createTopicConfig(rt)
		switch {
		case named[rt.Topic] > 1:
			code, err = kerr.InvalidRequest.Code, fmt.Errorf("topic %q is named more than once in the request", rt.Topic)
		case err != nil:
		case req.ValidateOnly:
			if _, derr := c.s.b.DescribeTopic(rt.Topic); derr == nil {
				err = fmt.Errorf("%w: %q", engine.ErrTopicExists, rt.Topic)
			} else if !errors.Is(derr, engine.ErrUnknownTopic) {
				err = derr
			}
			ti = engine.TopicInfo{Name: rt.Topic, Config: cfg, Partitions: make([]engine.PartitionInfo, cfg.Partitions)}
		default:
			ti, err = c.s.b.CreateTopic(c.ctx, rt.Topic, cfg)
		}
		if err != nil {
			if code == 0 {
				code = errorCode(err)
			}
			t.ErrorCode, t.ErrorMessage = code, kmsg.StringPtr(err.Error())
			resp.Topics = append(resp.Topics, t)
			continue
		}
		if !req.ValidateOnly {
			t.TopicID = topicID(ti)
		}
		t.NumPartitions = int32(len(ti.Partitions))
		t.ReplicationFactor = 1
		for _, e := range topicConfigEntries(ti.Config) {
			rc := kmsg.NewCreateTopicsResponseTopicConfig()
			rc.Name, rc.Value, rc.ReadOnly = e.name, kmsg.StringPtr(e.value), e.readOnly
			rc.Source = int8(e.source(kmsg.ConfigSourceDynamicTopicConfig))
			t.Configs = append(t.Configs, rc)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

// createTopicConfig turns a topic of a CreateTopics request into Ferry's
// settings, or says why not with a Kafka error code.
func createTopicConfig(rt kmsg.CreateTopicsRequestTopic) (engine.TopicConfig, int16, error) {
	var cfg engine.TopicConfig
	if err := engine.ValidateTopicName(rt.Topic); err != nil {
		return cfg, kerr.InvalidTopicException.Code, err
	}
	if rf := rt.ReplicationFactor; rf != 1 && rf != -1 {
		return cfg, kerr.InvalidReplicationFactor.Code,
			fmt.Errorf("replication factor %d: Ferry keeps one copy of each partition (1, or -1 for the default)", rf)
	}
	n := int(rt.NumPartitions)
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return cfg, kerr.InvalidRequest.Code, errors.New("with a replica assignment, num_partitions and replication_factor must be -1")
		}
		n = len(rt.ReplicaAssignment)
		have := make([]bool, n)
		for _, a := range rt.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= n || have[a.Partition] {
				return cfg, kerr.InvalidReplicaAssignment.Code, errors.New("the assignment must name partitions 0 to n-1, each once")
			}
			have[a.Partition] = true
			if len(a.Replicas) != 1 || a.Replicas[0] != nodeID {
				return cfg, kerr.InvalidReplicaAssignment.Code, fmt.Errorf("partition %d: replicas %v; Ferry's only broker is %d", a.Partition, a.Replicas, nodeID)
			}
		}
	}
	if n == -1 {
		n = 1
	}
	cfg.Partitions = n
	if n < 1 {
		return cfg, kerr.InvalidPartitions.Code, fmt.Errorf("%d partitions: want at least 1, or -1 for the default", n)
	}
	if err := (engine.TopicConfig{Partitions: n}).Validate(); err != nil {
		return cfg, kerr.InvalidPartitions.Code, err
	}
	if err := applyTopicConfigs(&cfg, rt.Configs); err != nil {
		return cfg, kerr.InvalidConfig.Code, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, kerr.InvalidConfig.Code, err
	}
	return cfg, 0, nil
}
