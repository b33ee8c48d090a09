package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ferrymq/ferry/storage/meta"
)

// # Topic folders the catalogue does not name
//
// A topic's folder is removed only when the metadata store says it may be: a
// drop key ("d/NAME~ID") names it. CreateTopic writes one before it creates
// the folder and deletes it in the batch that adds the topic to the
// catalogue; DeleteTopic writes one in the batch that takes the topic out of
// the catalogue and deletes it once the folder is gone. So a crash in either
// leaves a folder that Open removes, and a folder that neither the catalogue
// nor a drop key explains (the catalogue was lost or replaced, or someone
// copied a folder in) is never deleted: Open keeps it and reports it loudly.

// dropPrefix starts the keys of topic folders that may be removed.
const dropPrefix = "d/"

func dropKey(folder string) string { return dropPrefix + folder }

// Values of a drop key: why the folder may go.
var (
	dropCreating = []byte("create")
	dropDeleted  = []byte("delete")
)

// removeTopicFolder removes the folder of a topic whose drop key is written,
// then the drop key. Called with mu held.
func (b *Broker) removeTopicFolder(name, dir string) {
	if err := b.opts.FS.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		b.opts.Logger.Warn("topic folder not removed yet: the next open removes it", "topic", name, "folder", filepath.Base(dir), "err", err)
		return
	}
	var mb meta.Batch
	mb.Delete(dropKey(filepath.Base(dir)))
	if err := b.apply(&mb, meta.Written); err != nil {
		b.opts.Logger.Warn("topic folder removed, its drop key not: the next open removes it", "topic", name, "folder", filepath.Base(dir), "err", err)
	}
}

// sweepTopicFolders removes the topic folders that drop keys name and keeps,
// reporting them, those that neither the catalogue (keep) nor a drop key
// explains. It is called by Open once the catalogue's topics are open.
func (b *Broker) sweepTopicFolders(keep map[string]bool) error {
	drops := map[string]string{}
	b.meta.Scan(dropPrefix, func(key string, value []byte) bool {
		drops[strings.TrimPrefix(key, dropPrefix)] = string(value)
		return true
	})
	topicsDir := filepath.Join(b.opts.Dir, "topics")
	entries, err := b.opts.FS.ReadDir(topicsDir)
	if err != nil {
		return fmt.Errorf("list topics folder: %w", err)
	}
	var done meta.Batch
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		present[name] = true
		why, dropped := drops[name]
		switch {
		case keep[name]:
		case dropped:
			b.opts.Logger.Info("removing folder of a deleted topic", "folder", name, "reason", why)
			if err := b.opts.FS.RemoveAll(filepath.Join(topicsDir, name)); err != nil {
				b.opts.Logger.Warn("cannot remove folder of a deleted topic", "folder", name, "err", err)
				continue
			}
			done.Delete(dropKey(name))
		default:
			b.stray = append(b.stray, name)
			b.opts.Logger.Error("topic folder that the catalogue does not name and no delete explains: KEPT, not removed; "+
				"its topic is not served. If the metadata was lost or replaced, the folder holds that topic's messages "+
				"(see them with ferry log inspect); remove it by hand only once it is not needed",
				"folder", filepath.Join(topicsDir, name), "catalogue_topics", len(keep))
		}
	}
	for name := range drops {
		switch {
		case keep[name]:
			// Never written together (CreateTopic deletes the drop key in
			// the batch that adds the topic): the catalogue wins.
			b.opts.Logger.Warn("drop key of a topic folder the catalogue names: ignored", "folder", name)
			done.Delete(dropKey(name))
		case !present[name]:
			done.Delete(dropKey(name)) // the folder went before its key did
		}
	}
	if err := b.apply(&done, meta.Written); err != nil {
		// Harmless: the next open looks at the keys again.
		b.opts.Logger.Warn("cannot delete drop keys of removed topic folders", "err", err)
	}
	return nil
}

// StrayTopicFolders lists the folders under DIR/topics that Open found
// neither in the catalogue nor known to be deleted. They are kept and not
// served; Open logs each one as an error.
func (b *Broker) StrayTopicFolders() []string {
	return append([]string(nil), b.stray...)
}

// Check reports whether the broker can serve: nil, or ErrDataFolderGone
// once its data folder was deleted, moved or replaced under it. A
// readiness probe calls it.
func (b *Broker) Check() error { return b.checkFolder() }

// checkFolder reports ErrDataFolderGone once the data folder is no longer
// the one the broker opened: the LOCK file at its path is not the file the
// broker locked (the folder was deleted, moved or replaced; a new broker may
// even run on a new folder of that name, since its LOCK is a new file). From
// then on every call fails: the broker's open files belong to the old folder
// while what it would create by name (topic folders, segments, checkpoints)
// would land in the new one, and its catalogue changes would go to a change
// log that is no longer there.
func (b *Broker) checkFolder() error {
	if e := b.lost.Load(); e != nil {
		return *e
	}
	held, ok := b.lock.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return nil // a file system whose locks cannot tell
	}
	hi, err := held.Stat()
	if err != nil {
		return nil
	}
	pi, err := b.opts.FS.Stat(b.lockPath)
	if err == nil && os.SameFile(hi, pi) {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return nil // cannot tell now; the next check looks again
	}
	found := "another file"
	if err != nil {
		found = "nothing"
	}
	e := fmt.Errorf("%w: %s is not the file this broker locked at open; restart the broker", ErrDataFolderGone, b.lockPath)
	if b.lost.CompareAndSwap(nil, &e) {
		b.opts.Logger.Error("the data folder was deleted, moved or replaced while the broker ran: it stops serving "+
			"(its open files belong to the old folder, and what it wrote since may be lost); restart it",
			"dir", b.opts.Dir, "lock", b.lockPath, "found_at_lock_path", found)
	}
	return *b.lost.Load()
}

// scheduleFolderCheck runs checkFolder every FolderCheckInterval until the
// broker closes or the folder is found gone.
func (b *Broker) scheduleFolderCheck() {
	if b.opts.FolderCheckInterval < 0 {
		return
	}
	b.watchMu.Lock()
	defer b.watchMu.Unlock()
	if b.watchStopped {
		return
	}
	b.watch = b.opts.Clock.AfterFunc(b.opts.FolderCheckInterval, func() {
		if b.checkFolder() == nil {
			b.scheduleFolderCheck()
		}
	})
}

func (b *Broker) stopFolderCheck() {
	b.watchMu.Lock()
	defer b.watchMu.Unlock()
	b.watchStopped = true
	if b.watch != nil {
		b.watch.Stop()
	}
}

// apply writes a batch to the metadata store, unless the data folder is
// gone: the change log is then a file in no folder (or in the moved one),
// and a checkpoint the store took would be written, and change-log segments
// deleted, by name in whatever folder now has the old one's name.
func (b *Broker) apply(mb *meta.Batch, d meta.Durability) error {
	if e := b.lost.Load(); e != nil {
		return *e
	}
	return b.meta.Apply(mb, d)
}
