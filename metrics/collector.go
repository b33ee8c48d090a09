package metrics

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/engine"
)

// Source is what a Collector reads at scrape time; *engine.Broker is one.
type Source interface {
	ListTopics() ([]engine.TopicInfo, error)
	ListSubscriptions(topic string) ([]engine.SubscriptionInfo, error)
}

var _ Source = (*engine.Broker)(nil)

// Collector reports the broker's state as gauges, read when Prometheus
// scrapes: partition offsets and storage, subscription backlog, in-flight
// deliveries and members, and the data folder's free disk space.
type Collector struct {
	src Source
	dir string
	log *slog.Logger
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector reports the state of src, and the free space of the file
// system holding dir (the data folder; none when dir is "").
func NewCollector(src Source, dir string, logger *slog.Logger) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{src: src, dir: dir, log: logger}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	descUp = desc("up",
		"1 when the broker's state could be read at this scrape, 0 when not (closed, or storage failed): "+
			"then the topic, partition and subscription gauges are missing.")
	descTopics = desc("topics", "Topics in the broker.")
	descStart  = desc("partition_start_offset",
		"Offset of the oldest message still stored in a partition.", "topic", "partition")
	descEnd = desc("partition_end_offset",
		"Offset the next message stored in a partition will get (the high watermark).", "topic", "partition")
	descBytes = desc("partition_storage_bytes",
		"Bytes a partition's segments take on disk.", "topic", "partition")
	descSegments = desc("partition_segments",
		"Segment files of a partition.", "topic", "partition")
	descBacklog = desc("subscription_backlog_messages",
		"Messages a subscription has not consumed on a partition: stored and not acknowledged (queue), "+
			"or after the committed offset, the lag (stream).", "topic", "subscription", "kind", "partition")
	descInFlight = desc("subscription_in_flight_messages",
		"Deliveries of a queue subscription that wait for an ack.", "topic", "subscription")
	descMembers = desc("subscription_members",
		"Members (consumers) a subscription has now.", "topic", "subscription")
	descDiskFree = desc("data_disk_free_bytes",
		"Bytes free for the broker on the file system of the data folder.")
	descDiskSize = desc("data_disk_size_bytes",
		"Size in bytes of the file system of the data folder.")
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descTopics, descStart, descEnd, descBytes, descSegments,
		descBacklog, descInFlight, descMembers, descDiskFree, descDiskSize} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A topic deleted during the
// scrape is left out of it, not reported as an error.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.dir != "" {
		if free, size, err := diskSpace(c.dir); err != nil {
			c.log.Warn("metrics: cannot read free disk space", "dir", c.dir, "err", err)
		} else {
			gauge(descDiskFree, float64(free))
			gauge(descDiskSize, float64(size))
		}
	}
	topics, err := c.src.ListTopics()
	if err != nil {
		c.log.Warn("metrics: cannot list topics", "err", err)
		gauge(descUp, 0)
		return
	}
	gauge(descUp, 1)
	gauge(descTopics, float64(len(topics)))
	for _, t := range topics {
		for _, p := range t.Partitions {
			ps := strconv.Itoa(p.Partition)
			gauge(descStart, float64(p.StartOffset), t.Name, ps)
			gauge(descEnd, float64(p.EndOffset), t.Name, ps)
			gauge(descBytes, float64(p.Bytes), t.Name, ps)
			gauge(descSegments, float64(p.Segments), t.Name, ps)
		}
		subs, err := c.src.ListSubscriptions(t.Name)
		if err != nil {
			if !errors.Is(err, engine.ErrUnknownTopic) { // not merely deleted since ListTopics
				c.log.Warn("metrics: cannot list subscriptions", "topic", t.Name, "err", err)
			}
			continue
		}
		for _, s := range subs {
			inFlight := 0
			for _, p := range s.Partitions {
				gauge(descBacklog, float64(p.Backlog), t.Name, s.Name, string(s.Config.Kind), strconv.Itoa(p.Partition))
				inFlight += p.InFlight
			}
			gauge(descInFlight, float64(inFlight), t.Name, s.Name)
			gauge(descMembers, float64(s.Members), t.Name, s.Name)
		}
	}
}
