package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// clusterID names the cluster in Metadata and DescribeCluster.
const clusterID = "ferry"

// Metadata (key 3), versions 0-12: this broker, and the topics asked for
// (every topic when none are named) with their partitions, all led by it.
// With auto-creation on, a topic asked for and missing is created when
// the request allows it (always before version 4, as in Kafka).
func handleMetadata(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = nodeID, c.s.advertised.host, c.s.advertised.port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	resp.ClusterID = kmsg.StringPtr(clusterID)
	resp.ControllerID = nodeID

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		tis, err := c.s.b.ListTopics()
		if err != nil {
			return nil, err
		}
		for _, ti := range tis {
			resp.Topics = append(resp.Topics, metadataTopic(ti))
		}
		return resp, nil
	}
	var byID map[[16]byte]engine.TopicInfo
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			if byID == nil {
				byID = map[[16]byte]engine.TopicInfo{}
				tis, err := c.s.b.ListTopics()
				if err != nil {
					return nil, err
				}
				for _, ti := range tis {
					byID[topicID(ti)] = ti
				}
			}
			ti, ok := byID[rt.TopicID]
			t := kmsg.NewMetadataResponseTopic()
			t.TopicID = rt.TopicID
			if !ok {
				t.ErrorCode = kerr.UnknownTopicID.Code
			} else {
				t = metadataTopic(ti)
			}
			resp.Topics = append(resp.Topics, t)
			continue
		}
		name := *rt.Topic
		ti, err := c.s.b.DescribeTopic(name)
		if errors.Is(err, engine.ErrUnknownTopic) && c.s.opts.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation) {
			ti, err = c.s.autoCreate(c, name)
		}
		if err != nil {
			t := kmsg.NewMetadataResponseTopic()
			t.Topic = kmsg.StringPtr(name)
			t.ErrorCode = errorCode(err)
			resp.Topics = append(resp.Topics, t)
			continue
		}
		resp.Topics = append(resp.Topics, metadataTopic(ti))
	}
	return resp, nil
}

// autoCreate creates a topic a client named, with the defaults (one
// partition), as Kafka's auto.create.topics.enable; a topic created
// meanwhile by another client is fine.
func (s *Server) autoCreate(c *conn, name string) (engine.TopicInfo, error) {
	ti, err := s.b.CreateTopic(c.ctx, name, engine.TopicConfig{})
	if errors.Is(err, engine.ErrTopicExists) {
		return s.b.DescribeTopic(name)
	}
	if err == nil {
		s.log.Info("kafka: topic created on first use", "topic", name, "client_id", c.clientID)
	}
	return ti, err
}

func metadataTopic(ti engine.TopicInfo) kmsg.MetadataResponseTopic {
	t := kmsg.NewMetadataResponseTopic()
	t.Topic = kmsg.StringPtr(ti.Name)
	t.TopicID = topicID(ti)
	for _, pi := range ti.Partitions {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition = int32(pi.Partition)
		p.Leader = nodeID
		p.LeaderEpoch = 0
		p.Replicas = []int32{nodeID}
		p.ISR = []int32{nodeID}
		t.Partitions = append(t.Partitions, p)
	}
	return t
}
