// Package workload reads the benchmark's workload files (bench/workloads/*.toml):
// what to run, in the spirit of the OpenMessaging Benchmark's workload files.
//
// A file names one pattern and the knobs of a run; its sizes list expands
// into one Spec per message size, which is what the runner runs:
//
//	name          = "queue-durable"
//	pattern       = "queue"      # queue | pubsub | stream | latency
//	sizes         = [128, 1024]  # message sizes in bytes, one run each
//	producers     = 4
//	consumers     = 2            # per subscription
//	subscriptions = 1            # fan-out: every subscription gets every message
//	partitions    = 4            # shards of the topic, stream or queue
//	rate          = 0            # 0: as fast as acknowledgements allow; else msgs/s
//	warmup        = "2s"         # sent and checked, not measured
//	duration      = "10s"        # measured; or messages = N
//	durability    = "durable"    # durable | none
package workload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Pattern is what a workload exercises.
type Pattern string

const (
	// Queue: producers publish with acknowledgements (publisher confirms)
	// to a durable queue; consumers share it, each message to one of them,
	// acknowledged one by one. Throughput is messages acknowledged by
	// consumers per second.
	Queue Pattern = "queue"
	// PubSub: producers publish; each of Subscriptions subscribers receives
	// every message, live. Throughput is deliveries per second.
	PubSub Pattern = "pubsub"
	// Stream: producers append to a log with acknowledgements; then
	// Consumers readers replay it all from the start. Two throughputs:
	// append and replay.
	Stream Pattern = "stream"
	// Latency: the Queue pattern at a fixed rate, where what counts is
	// the end-to-end latency from each message's scheduled send time.
	Latency Pattern = "latency"
)

// Durability is what a workload asks of an acknowledged publish.
type Durability string

const (
	// Durable: the system stores the message before it acknowledges it,
	// at its configured sync setting (each driver describes its own).
	Durable Durability = "durable"
	// None: live delivery only; nothing needs to be stored.
	None Durability = "none"
)

// Duration is a time.Duration written as text ("10s") in a workload file.
type Duration struct{ time.Duration }

// UnmarshalText reads a duration such as "10s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// File is one workload file as written.
type File struct {
	Name          string     `toml:"name"`
	Description   string     `toml:"description"`
	Pattern       Pattern    `toml:"pattern"`
	Sizes         []int      `toml:"sizes"`
	Producers     int        `toml:"producers"`
	Consumers     int        `toml:"consumers"`
	Subscriptions int        `toml:"subscriptions"`
	Partitions    int        `toml:"partitions"`
	Rate          int        `toml:"rate"`
	Warmup        Duration   `toml:"warmup"`
	Duration      Duration   `toml:"duration"`
	Messages      int64      `toml:"messages"`
	Durability    Durability `toml:"durability"`
}

// Spec is one run's workload: a File at one message size.
type Spec struct {
	// Name is the file's name with the size: "queue-durable/128B".
	Name          string
	Workload      string
	Pattern       Pattern
	Size          int
	Producers     int
	Consumers     int
	Subscriptions int
	Partitions    int
	Rate          int
	Warmup        time.Duration
	Duration      time.Duration
	Messages      int64
	Durability    Durability
}

// MinSize is the smallest message: the runner writes a message's id and
// scheduled send time in its first 16 bytes.
const MinSize = 16

// Parse reads a workload file's text.
func Parse(data []byte) (File, error) {
	var f File
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return File{}, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return File{}, fmt.Errorf("unknown setting %q", und[0].String())
	}
	f.defaults()
	return f, f.Validate()
}

// Load reads one workload file.
func Load(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	f, err := Parse(data)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// LoadDir reads every *.toml file of dir, sorted by name.
func LoadDir(dir string) ([]File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	var files []File
	for _, p := range paths {
		f, err := Load(p)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	if len(files) == 0 {
		return nil, fmt.Errorf("no workload files in %s", dir)
	}
	return files, nil
}

func (f *File) defaults() {
	if f.Producers == 0 {
		f.Producers = 1
	}
	if f.Consumers == 0 {
		f.Consumers = 1
	}
	if f.Subscriptions == 0 {
		f.Subscriptions = 1
	}
	if f.Partitions == 0 {
		f.Partitions = 1
	}
	if f.Durability == "" {
		f.Durability = Durable
	}
}

// Validate reports the settings that cannot work.
func (f File) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if f.Name == "" || strings.ContainsAny(f.Name, " /") {
		bad("name %q: want a non-empty name without spaces or slashes", f.Name)
	}
	switch f.Pattern {
	case Queue, PubSub, Stream, Latency:
	default:
		bad("pattern %q: want queue, pubsub, stream or latency", f.Pattern)
	}
	if len(f.Sizes) == 0 {
		bad("sizes: want at least one message size")
	}
	for _, s := range f.Sizes {
		if s < MinSize || s > 1<<20 {
			bad("size %d: want %d bytes to 1 MiB", s, MinSize)
		}
	}
	if f.Producers < 1 || f.Consumers < 1 || f.Subscriptions < 1 || f.Partitions < 1 {
		bad("producers, consumers, subscriptions and partitions must be at least 1")
	}
	if f.Pattern != PubSub && f.Subscriptions != 1 {
		bad("subscriptions %d: only pubsub fans out to several subscriptions", f.Subscriptions)
	}
	if f.Pattern == PubSub && f.Consumers != 1 {
		bad("consumers %d: pubsub has one consumer per subscription", f.Consumers)
	}
	if f.Rate < 0 {
		bad("rate %d: want 0 (as fast as possible) or msgs/s", f.Rate)
	}
	if f.Pattern == Latency && f.Rate == 0 {
		bad("a latency workload needs a fixed rate")
	}
	if (f.Duration.Duration > 0) == (f.Messages > 0) {
		bad("want exactly one of duration and messages")
	}
	if f.Warmup.Duration < 0 || f.Duration.Duration < 0 || f.Messages < 0 {
		bad("warmup, duration and messages must not be negative")
	}
	switch f.Durability {
	case Durable, None:
	default:
		bad("durability %q: want durable or none", f.Durability)
	}
	return errors.Join(errs...)
}

// Specs expands the file into one Spec per message size.
func (f File) Specs() []Spec {
	var specs []Spec
	for _, size := range f.Sizes {
		specs = append(specs, Spec{
			Name:          fmt.Sprintf("%s/%s", f.Name, SizeName(size)),
			Workload:      f.Name,
			Pattern:       f.Pattern,
			Size:          size,
			Producers:     f.Producers,
			Consumers:     f.Consumers,
			Subscriptions: f.Subscriptions,
			Partitions:    f.Partitions,
			Rate:          f.Rate,
			Warmup:        f.Warmup.Duration,
			Duration:      f.Duration.Duration,
			Messages:      f.Messages,
			Durability:    f.Durability,
		})
	}
	return specs
}

// SizeName writes a message size as the tables do: 128B, 1KiB.
func SizeName(size int) string {
	if size >= 1024 && size%1024 == 0 {
		return fmt.Sprintf("%dKiB", size/1024)
	}
	return fmt.Sprintf("%dB", size)
}

// QueueLike says whether the pattern runs on a queue with acks.
func (s Spec) QueueLike() bool { return s.Pattern == Queue || s.Pattern == Latency }
