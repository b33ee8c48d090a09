package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/meta"
)

// Broker is an embedded Ferry broker over one data folder. It is safe for
// concurrent use.
type Broker struct {
	opts  Options
	hooks hooks
	meta  *meta.Store

	// mu guards topics and closed. Publishes and reads hold it shared while
	// they use a topic's logs; creating, altering and deleting topics hold it
	// exclusively.
	mu     sync.RWMutex
	topics map[string]*topic
	closed bool

	// ephMu guards ephemerals. Lock order: mu, then ephMu, then an
	// Ephemeral's own lock.
	ephMu      sync.RWMutex
	ephemerals map[*Ephemeral]struct{}

	lock     io.Closer // the data folder's LOCK file
	lockPath string
	// lost holds the ErrDataFolderGone error once the data folder is found
	// deleted, moved or replaced (checkFolder): every call fails with it.
	lost         atomic.Pointer[error]
	watchMu      sync.Mutex // guards watch and watchStopped
	watch        clock.Timer
	watchStopped bool
	// stray lists the topic folders Open kept though nothing explained them.
	stray []string

	retention clock.Timer
	retMu     sync.Mutex // serialises retention runs and their rescheduling
}

// Open opens (creating when missing) the broker's data folder and recovers
// every topic in it.
func Open(opts Options) (*Broker, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("engine options: %w", err)
	}
	if err := opts.FS.MkdirAll(filepath.Join(opts.Dir, "topics"), 0o755); err != nil {
		return nil, fmt.Errorf("open data folder: %w", err)
	}
	// One broker per data folder: a second one would interleave writes.
	lockPath := filepath.Join(opts.Dir, "LOCK")
	lock, err := opts.FS.Lock(lockPath)
	if err != nil {
		return nil, fmt.Errorf("open data folder %s: %w", opts.Dir, err)
	}
	m, err := meta.Open(filepath.Join(opts.Dir, "meta"), meta.Options{FS: opts.FS, Logger: opts.Logger})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	b := &Broker{opts: opts, hooks: newHooks(opts.Hooks), meta: m, topics: map[string]*topic{}, ephemerals: map[*Ephemeral]struct{}{}, lock: lock, lockPath: lockPath}
	if err := b.loadTopics(); err != nil {
		b.closeTopics()
		m.Close()
		lock.Close()
		return nil, err
	}
	b.scheduleRetention()
	b.scheduleFolderCheck()
	return b, nil
}

// loadTopics opens every topic in the catalogue, removes the topic folders
// known to be deleted (a create or delete interrupted by a crash) and keeps,
// reporting them, folders nothing explains (see sweepTopicFolders).
func (b *Broker) loadTopics() error {
	recs, err := scanCatalogue[topicRecord](b.meta, topicPrefix)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, r := range recs {
		t := &topic{rec: r, dir: b.topicDir(r), subs: map[string]*queueSub{}, streams: map[string]*streamSub{}}
		keep[filepath.Base(t.dir)] = true
		parts, err := b.openPartitions(t, 0, r.Config.Partitions)
		if err != nil {
			return err
		}
		t.parts = parts
		t.dedup = newDedup(r.Config.DedupWindow)
		if err := t.rebuildDedup(b.opts.Clock.Now()); err != nil {
			b.opts.Logger.Warn("publish deduplication not rebuilt", "topic", r.Name, "err", err)
		}
		b.topics[r.Name] = t
		if err := b.loadSubscriptions(t); err != nil {
			return err
		}
		for p := range t.parts {
			t.setWorkFloor(p)
		}
	}
	return b.sweepTopicFolders(keep)
}

// scanCatalogue decodes the JSON catalogue entries under prefix.
func scanCatalogue[T any](m *meta.Store, prefix string) ([]T, error) {
	var recs []T
	var bad error
	m.Scan(prefix, func(key string, value []byte) bool {
		var r T
		if err := json.Unmarshal(value, &r); err != nil {
			bad = fmt.Errorf("catalogue entry %s: %w", key, err)
			return false
		}
		recs = append(recs, r)
		return true
	})
	return recs, bad
}

// waitFor calls poll until it returns something or an error, waiting on the
// channel poll returns (closed when there may be more) or until ctx ends.
// It is the shape of every blocking receive in the engine.
func waitFor[T any](ctx context.Context, poll func() ([]T, <-chan struct{}, error)) ([]T, error) {
	for {
		out, ch, err := poll()
		if err != nil || len(out) > 0 {
			return out, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops the broker: it waits for publishes in progress, then syncs
// and closes every log and the metadata store.
func (b *Broker) Close() error {
	b.retMu.Lock()
	if b.retention != nil {
		b.retention.Stop()
	}
	b.retMu.Unlock()
	b.stopFolderCheck()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.closed = true
	b.closeEphemerals()
	for _, t := range b.topics {
		for _, q := range t.subs {
			q.shutdown()
		}
		for _, s := range t.streams {
			s.shutdown()
		}
	}
	b.closeTopics()
	err := b.meta.Close()
	b.lock.Close()
	return err
}

func (b *Broker) closeTopics() {
	for _, t := range b.topics {
		t.close()
	}
}

// topic returns the named open topic. Called with mu held (shared is enough).
func (b *Broker) topic(name string) (*topic, error) {
	if b.closed {
		return nil, ErrClosed
	}
	if e := b.lost.Load(); e != nil {
		return nil, *e
	}
	t, ok := b.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownTopic, name)
	}
	return t, nil
}

// CreateTopic creates a topic and returns its description.
func (b *Broker) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (TopicInfo, error) {
	if err := ValidateTopicName(name); err != nil {
		return TopicInfo{}, err
	}
	cfg, err := cfg.withDefaults(b.opts.DefaultFsync)
	if err != nil {
		return TopicInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return TopicInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return TopicInfo{}, ErrClosed
	}
	if err := b.checkFolder(); err != nil {
		return TopicInfo{}, err
	}
	if _, ok := b.topics[name]; ok {
		return TopicInfo{}, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	rec := topicRecord{Name: name, ID: newTopicID(), Created: b.opts.Clock.Now().UTC(), Config: cfg}
	t := &topic{rec: rec, dir: b.topicDir(rec), dedup: newDedup(cfg.DedupWindow), subs: map[string]*queueSub{}, streams: map[string]*streamSub{}}
	// The drop key goes first, so a crash before the catalogue names the
	// folder leaves a folder the next Open knows it may remove. Written is
	// enough: were it lost with a folder that was not, that folder would
	// be kept and reported, never a catalogued topic's removed.
	var mb meta.Batch
	mb.Put(dropKey(filepath.Base(t.dir)), dropCreating)
	if err := b.apply(&mb, meta.Written); err != nil {
		return TopicInfo{}, fmt.Errorf("create topic %q: %w", name, mapStorageErr(err))
	}
	parts, err := b.openPartitions(t, 0, cfg.Partitions)
	if err != nil {
		b.removeTopicFolder(name, t.dir)
		return TopicInfo{}, mapStorageErr(err)
	}
	t.parts = parts
	mb.Reset()
	mb.Put(topicKey(name), rec.encode())
	mb.Delete(dropKey(filepath.Base(t.dir)))
	if err := b.apply(&mb, meta.Synced); err != nil {
		t.close()
		b.removeTopicFolder(name, t.dir)
		return TopicInfo{}, fmt.Errorf("create topic %q: %w", name, mapStorageErr(err))
	}
	b.topics[name] = t
	b.topicCreated(name, cfg.Partitions)
	b.opts.Logger.Info("topic created", "topic", name, "partitions", cfg.Partitions)
	return t.info(), nil
}

// DescribeTopic returns a topic's settings and partitions.
func (b *Broker) DescribeTopic(name string) (TopicInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, err := b.topic(name)
	if err != nil {
		return TopicInfo{}, err
	}
	return t.info(), nil
}

// ListTopics describes every topic, sorted by name.
func (b *Broker) ListTopics() ([]TopicInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	if e := b.lost.Load(); e != nil {
		return nil, *e
	}
	names := make([]string, 0, len(b.topics))
	for n := range b.topics {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]TopicInfo, 0, len(names))
	for _, n := range names {
		out = append(out, b.topics[n].info())
	}
	return out, nil
}

// TopicChange lists the settings AlterTopic changes; nil fields stay.
type TopicChange struct {
	Retention       *Retention
	Fsync           *string
	MaxMessageBytes *int
	DedupWindow     *time.Duration
}

// AlterTopic changes a topic's retention and limits. The topic's logs are
// reopened with the new settings; publishes wait meanwhile.
func (b *Broker) AlterTopic(ctx context.Context, name string, ch TopicChange) (TopicInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topic(name)
	if err != nil {
		return TopicInfo{}, err
	}
	if err := b.checkFolder(); err != nil {
		return TopicInfo{}, err
	}
	cfg := t.rec.Config
	if ch.Retention != nil {
		cfg.Retention = *ch.Retention
	}
	if ch.Fsync != nil {
		cfg.Fsync = *ch.Fsync
	}
	if ch.MaxMessageBytes != nil {
		cfg.MaxMessageBytes = *ch.MaxMessageBytes
	}
	if ch.DedupWindow != nil {
		cfg.DedupWindow = *ch.DedupWindow
	}
	if cfg, err = cfg.withDefaults(b.opts.DefaultFsync); err != nil {
		return TopicInfo{}, err
	}
	rec := t.rec
	rec.Config = cfg
	var mb meta.Batch
	mb.Put(topicKey(name), rec.encode())
	if err := b.apply(&mb, meta.Synced); err != nil {
		return TopicInfo{}, fmt.Errorf("alter topic %q: %w", name, mapStorageErr(err))
	}
	t.close()
	t.rec = rec
	parts, err := b.openPartitions(t, 0, cfg.Partitions)
	if err != nil {
		// The catalogue has the new settings; the next Open uses them.
		delete(b.topics, name)
		return TopicInfo{}, err
	}
	t.parts = parts
	for p := range parts {
		t.setWorkFloor(p)
	}
	t.dedup.setWindow(cfg.DedupWindow)
	return t.info(), nil
}

// AddPartitions raises a topic's partition count to n. Keys hash over the
// new count from then on, as in Kafka.
func (b *Broker) AddPartitions(ctx context.Context, name string, n int) (TopicInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topic(name)
	if err != nil {
		return TopicInfo{}, err
	}
	if err := b.checkFolder(); err != nil {
		return TopicInfo{}, err
	}
	have := len(t.parts)
	if n <= have || n > maxPartitions {
		return TopicInfo{}, fmt.Errorf("%w: topic %q has %d partitions; the new count must be more, at most %d", ErrInvalidConfig, name, have, maxPartitions)
	}
	parts, err := b.openPartitions(t, have, n)
	if err != nil {
		return TopicInfo{}, mapStorageErr(err)
	}
	rec := t.rec
	rec.Config.Partitions = n
	var mb meta.Batch
	mb.Put(topicKey(name), rec.encode())
	if err := b.apply(&mb, meta.Synced); err != nil {
		for _, l := range parts {
			l.Close()
		}
		return TopicInfo{}, fmt.Errorf("add partitions to %q: %w", name, mapStorageErr(err))
	}
	t.rec = rec
	t.parts = append(t.parts, parts...)
	// Subscriptions grow their per-partition state here, under the write
	// lock, so readers of it under the shared lock never see it change.
	for _, q := range t.subs {
		q.mu.Lock()
		q.ensurePartitions()
		q.mu.Unlock()
	}
	for _, s := range t.streams {
		s.mu.Lock()
		s.syncPartitions()
		s.afterChange(b.opts.Clock.Now())
		s.mu.Unlock()
	}
	return t.info(), nil
}

// DeleteTopic deletes a topic and its data.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.topic(name)
	if err != nil {
		return err
	}
	if err := b.checkFolder(); err != nil {
		return err
	}
	// The drop key, in the batch that takes the topic out of the catalogue,
	// lets the next Open finish removing the folder if this call cannot.
	var mb meta.Batch
	mb.Delete(topicKey(name))
	mb.DeletePrefix(subPrefix(name))
	mb.DeletePrefix(statePrefix(name))
	mb.Put(dropKey(filepath.Base(t.dir)), dropDeleted)
	if err := b.apply(&mb, meta.Synced); err != nil {
		return fmt.Errorf("delete topic %q: %w", name, mapStorageErr(err))
	}
	delete(b.topics, name)
	for _, q := range t.subs {
		q.shutdown()
	}
	for _, s := range t.streams {
		s.shutdown()
	}
	t.close()
	b.removeTopicFolder(name, t.dir)
	b.opts.Logger.Info("topic deleted", "topic", name)
	return nil
}

// EnforceRetention applies every topic's retention now. The broker also
// runs it every Options.RetentionInterval.
func (b *Broker) EnforceRetention() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	// Segments are deleted by name: not in a folder that is not ours.
	if err := b.checkFolder(); err != nil {
		return err
	}
	var errs []error
	for name, t := range b.topics {
		for p, l := range t.parts {
			res, err := l.EnforceRetention()
			if err != nil {
				errs = append(errs, fmt.Errorf("retention of %s/%d: %w", name, p, err))
				continue
			}
			if res.Segments > 0 {
				b.opts.Logger.Info("retention", "topic", name, "partition", p, "segments", res.Segments, "bytes", res.Bytes, "start_offset", res.Start)
			}
		}
	}
	return errors.Join(errs...)
}

func (b *Broker) scheduleRetention() {
	b.retMu.Lock()
	defer b.retMu.Unlock()
	b.retention = b.opts.Clock.AfterFunc(b.opts.RetentionInterval, func() {
		if err := b.EnforceRetention(); errors.Is(err, ErrClosed) || errors.Is(err, ErrDataFolderGone) {
			return
		} else if err != nil {
			b.opts.Logger.Warn("retention failed", "err", err)
		}
		b.scheduleRetention()
	})
}

// mapStorageErr turns storage errors into the engine's typed errors.
func mapStorageErr(err error) error {
	if err == nil {
		return nil
	}
	if isNoSpace(err) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }
