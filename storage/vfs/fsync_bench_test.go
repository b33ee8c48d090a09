package vfs

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFsync measures one 10 KB write plus fsync, the unit of a group
// commit, in two ways: appending (the fsync also records the longer file)
// and overwriting zeros written ahead (the fsync flushes data only). The
// difference is why the partition log writes zeros ahead under
// fsync=always.
func BenchmarkFsync(b *testing.B) {
	data := make([]byte, 10<<10)
	b.Run("append", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var off int64
		for b.Loop() {
			if _, err := f.WriteAt(data, off); err != nil {
				b.Fatal(err)
			}
			off += int64(len(data))
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("overwrite-zeros", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		zeros := make([]byte, 1<<20)
		size := int64(b.N)*int64(len(data)) + 1
		for off := int64(0); off < size; off += int64(len(zeros)) {
			f.WriteAt(zeros, off)
		}
		f.Sync()
		var off int64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := f.WriteAt(data, off); err != nil {
				b.Fatal(err)
			}
			off += int64(len(data))
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
