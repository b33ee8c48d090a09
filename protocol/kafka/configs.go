package kafka

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// configEntry is one config as CreateTopics (v5+) and DescribeConfigs
// report it.
type configEntry struct {
	name, value string
	readOnly    bool // not settable through Kafka
	isDefault   bool // the value Ferry uses when none is set
	typ         kmsg.ConfigType
	doc         string
}

// source is the entry's DescribeConfigs source: a default, or set on the
// topic (or, for the broker, in Ferry's configuration).
func (e configEntry) source(set kmsg.ConfigSource) kmsg.ConfigSource {
	if e.isDefault {
		return kmsg.ConfigSourceDefaultConfig
	}
	return set
}

// topicConfig is a Kafka topic config Ferry understands. Those with set
// map onto a Ferry topic setting; the others are read-only facts of how
// Ferry works, accepted at creation only with the value Ferry has anyway.
type topicConfig struct {
	name string
	typ  kmsg.ConfigType
	doc  string
	// get is the topic's value, and whether it is the default.
	get func(engine.TopicConfig) (string, bool)
	// set puts a value into the topic's settings; nil for read-only.
	set func(*engine.TopicConfig, string) error
}

// topicConfigs lists the topic configs understood, by name.
var topicConfigs = []topicConfig{
	{
		name: "cleanup.policy", typ: kmsg.ConfigTypeList,
		doc: "Ferry deletes old segments by retention; log compaction is not supported.",
		get: fixed("delete"),
	},
	{
		name: "compression.type", typ: kmsg.ConfigTypeString,
		doc: "Batches are stored as the producer compressed them.",
		get: fixed("producer"),
	},
	{
		name: "max.message.bytes", typ: kmsg.ConfigTypeInt,
		doc: "The largest message (key, value and headers) the topic accepts: Ferry's max_message_bytes, 1 byte to 64 MiB.",
		get: func(c engine.TopicConfig) (string, bool) {
			n := c.MaxMessageBytes
			if n == 0 {
				n = engine.DefaultMaxMessageBytes
			}
			return strconv.Itoa(n), n == engine.DefaultMaxMessageBytes
		},
		set: func(c *engine.TopicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 1 {
				return fmt.Errorf("a positive number of bytes")
			}
			c.MaxMessageBytes = int(n)
			return nil
		},
	},
	{
		name: "message.timestamp.type", typ: kmsg.ConfigTypeString,
		doc: "Records keep the timestamp their producer gave them.",
		get: fixed("CreateTime"),
	},
	{
		name: "min.insync.replicas", typ: kmsg.ConfigTypeInt,
		doc: "Ferry keeps one copy of each partition on one broker.",
		get: fixed("1"),
	},
	{
		name: "retention.bytes", typ: kmsg.ConfigTypeLong,
		doc: "The size past which a partition's oldest segments are deleted: Ferry's retention max_bytes; -1 for no limit.",
		get: func(c engine.TopicConfig) (string, bool) {
			if c.Retention.MaxBytes <= 0 {
				return "-1", true
			}
			return strconv.FormatInt(c.Retention.MaxBytes, 10), false
		},
		set: func(c *engine.TopicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n == 0 || n < -1 {
				return fmt.Errorf("-1 (no limit) or a positive number of bytes")
			}
			c.Retention.MaxBytes = max(n, 0)
			return nil
		},
	},
	{
		name: "retention.ms", typ: kmsg.ConfigTypeLong,
		doc: "The age past which segments are deleted: Ferry's retention max_age; -1 for no limit.",
		get: func(c engine.TopicConfig) (string, bool) {
			if c.Retention.MaxAge <= 0 {
				return "-1", true
			}
			return strconv.FormatInt(c.Retention.MaxAge.Milliseconds(), 10), false
		},
		set: func(c *engine.TopicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n == 0 || n < -1 || n > int64(time.Duration(1<<63-1)/time.Millisecond) {
				return fmt.Errorf("-1 (no limit) or a positive number of milliseconds")
			}
			c.Retention.MaxAge = time.Duration(max(n, 0)) * time.Millisecond
			return nil
		},
	},
	{
		name: "segment.bytes", typ: kmsg.ConfigTypeInt,
		doc: "The size at which a partition's log rolls to a new segment: Ferry's segment_bytes, 1 KiB to 1 GiB.",
		get: func(c engine.TopicConfig) (string, bool) {
			if c.SegmentBytes == 0 {
				return strconv.FormatInt(engine.DefaultSegmentBytes(), 10), true
			}
			return strconv.FormatInt(c.SegmentBytes, 10), c.SegmentBytes == engine.DefaultSegmentBytes()
		},
		set: func(c *engine.TopicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 1 {
				return fmt.Errorf("a positive number of bytes")
			}
			c.SegmentBytes = n
			return nil
		},
	},
}

// fixed is the get of a read-only config.
func fixed(v string) func(engine.TopicConfig) (string, bool) {
	return func(engine.TopicConfig) (string, bool) { return v, true }
}

func lookupTopicConfig(name string) (topicConfig, bool) {
	i := slices.IndexFunc(topicConfigs, func(tc topicConfig) bool { return tc.name == name })
	if i < 0 {
		return topicConfig{}, false
	}
	return topicConfigs[i], true
}

// applyTopicConfigs puts a CreateTopics request's configs into cfg. A
// config Ferry does not understand, a read-only one with another value
// than Ferry's, or a bad value is an error wrapping
// engine.ErrInvalidConfig. A null value leaves the default.
func applyTopicConfigs(cfg *engine.TopicConfig, cs []kmsg.CreateTopicsRequestTopicConfig) error {
	for _, c := range cs {
		if c.Value == nil {
			continue
		}
		tc, ok := lookupTopicConfig(c.Name)
		if !ok {
			return fmt.Errorf("%w: Ferry does not support the topic config %q (it understands %s)", engine.ErrInvalidConfig, c.Name, settableNames())
		}
		if tc.set == nil {
			if v, _ := tc.get(*cfg); v != *c.Value {
				return fmt.Errorf("%w: %s is always %q in Ferry, not %q", engine.ErrInvalidConfig, c.Name, v, *c.Value)
			}
			continue
		}
		if err := tc.set(cfg, strings.TrimSpace(*c.Value)); err != nil {
			return fmt.Errorf("%w: %s %q: want %v", engine.ErrInvalidConfig, c.Name, *c.Value, err)
		}
	}
	return nil
}

// settableNames lists the topic configs that set something.
func settableNames() string {
	var names []string
	for _, tc := range topicConfigs {
		if tc.set != nil {
			names = append(names, tc.name)
		}
	}
	return strings.Join(names, ", ")
}

// topicConfigEntries is every topic config understood, with a topic's
// values, in name order.
func topicConfigEntries(cfg engine.TopicConfig) []configEntry {
	out := make([]configEntry, 0, len(topicConfigs))
	for _, tc := range topicConfigs {
		v, def := tc.get(cfg)
		out = append(out, configEntry{name: tc.name, value: v, readOnly: tc.set == nil, isDefault: def, typ: tc.typ, doc: tc.doc})
	}
	return out
}

// brokerConfigEntries describes this broker: read-only, as Ferry's
// configuration (flags, environment, file) sets them, not Kafka.
func (s *Server) brokerConfigEntries() []configEntry {
	ro := func(name, value string, isDefault bool, typ kmsg.ConfigType, doc string) configEntry {
		return configEntry{name: name, value: value, readOnly: true, isDefault: isDefault, typ: typ, doc: doc}
	}
	advertised := "PLAINTEXT://" + s.advertisedHostPort()
	return []configEntry{
		ro("advertised.listeners", advertised, false, kmsg.ConfigTypeList, "Where clients connect: Ferry's --kafka-advertised-addr, else its --kafka-addr."),
		ro("auto.create.topics.enable", strconv.FormatBool(s.opts.AutoCreateTopics), false, kmsg.ConfigTypeBoolean, "Whether a topic a client names is created on first use: Ferry's --kafka-auto-create-topics."),
		ro("broker.id", strconv.Itoa(nodeID), true, kmsg.ConfigTypeInt, "One Ferry broker is node 0."),
		ro("default.replication.factor", "1", true, kmsg.ConfigTypeInt, "Ferry keeps one copy of each partition."),
		ro("delete.topic.enable", "true", true, kmsg.ConfigTypeBoolean, "DeleteTopics deletes topics."),
		ro("log.retention.bytes", "-1", true, kmsg.ConfigTypeLong, "Topics keep their messages until their own retention says otherwise."),
		ro("log.retention.ms", "-1", true, kmsg.ConfigTypeLong, "Topics keep their messages until their own retention says otherwise."),
		ro("log.segment.bytes", strconv.FormatInt(engine.DefaultSegmentBytes(), 10), true, kmsg.ConfigTypeInt, "The segment size of topics that set none."),
		ro("message.max.bytes", strconv.Itoa(engine.DefaultMaxMessageBytes), true, kmsg.ConfigTypeInt, "The largest message of topics that set no max.message.bytes."),
		ro("num.partitions", "1", true, kmsg.ConfigTypeInt, "The partitions of a topic created with none named, or on first use."),
		ro("socket.request.max.bytes", strconv.Itoa(s.opts.MaxRequestBytes), s.opts.MaxRequestBytes == 100<<20, kmsg.ConfigTypeInt, "The largest request the broker reads."),
	}
}

// advertisedHostPort is the address Metadata gives.
func (s *Server) advertisedHostPort() string {
	return net.JoinHostPort(s.advertised.host, strconv.Itoa(int(s.advertised.port)))
}
