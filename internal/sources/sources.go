// Package sources reads what drflow protects (a directory tree, a PostgreSQL database, a
// prefix of an object store) as a stream of entries with a data_as_of time, and writes
// restored entries back out (sinks). The backup engine sees only these interfaces.
package sources

import (
	"context"
	"io"
	"io/fs"
	"time"
)

// Kinds of source, as in configuration.
const (
	KindDirectory = "directory"
	KindPostgres  = "postgres"
	KindObjects   = "objects"
)

// EntryType is what an entry is.
type EntryType uint8

// Entry types.
const (
	TypeFile EntryType = iota + 1
	TypeDir
	TypeSymlink
)

func (t EntryType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return "unknown"
}

// Entry is one item of a source. Paths are slash-separated, relative, and never contain
// "." or ".." segments.
type Entry struct {
	Path    string
	Type    EntryType
	Mode    fs.FileMode // permission bits (and setuid/setgid/sticky)
	ModTime time.Time
	// Size is the content length for files when the source knows it in advance, -1 for a
	// stream of unknown length (a database dump).
	Size   int64
	Target string // symlink target, as stored in the link
	// ChangeTime is when the entry last changed in any way (a file's ctime: content, mode,
	// owner, links or name), where the source knows it; zero otherwise. It is not stored in
	// restore points: backups compare it to tell files that have not changed since the
	// previous one.
	ChangeTime time.Time
}

// Problem is an entry the source could not read. Sources report problems instead of silently
// skipping, and the engine records them in the restore point and its result.
type Problem struct {
	Path string
	Err  string
}

// Source is a configured thing to protect.
type Source interface {
	// Kind is one of the Kind* constants.
	Kind() string
	// Snapshot starts a consistent read. For a database it is one transaction snapshot; for a
	// directory or object prefix it is a walk that starts now.
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Snapshot is one read of a source.
type Snapshot interface {
	// DataAsOf is the moment the data was read: the database snapshot's start, or the start
	// of the walk. RPO is measured from it.
	DataAsOf() time.Time
	// Facts are what a restore must reproduce to count as verified (for PostgreSQL: row
	// counts per table, taken in the dump's snapshot). They are stored encrypted in the
	// manifest, never in logs or audit events, since they can name customer tables.
	Facts() map[string]string
	// Walk calls fn for every entry in lexical path order, with the content of files (nil for
	// directories and symlinks), valid only during the call. Entries whose path sorts at or
	// before after are skipped without being read (to resume from a checkpoint). An error
	// from fn stops the walk and is returned as is. Unreadable entries are reported by
	// Problems, not passed to fn.
	//
	// "Lexical path order" is precisely walk order, as ComparePaths defines it: depth first,
	// siblings sorted by the bytes of their names, a directory before its contents; that is,
	// byte order of the paths with '/' sorting before every other byte ("a", "a/b", "a.b").
	// Plain string order differs ("a.b" < "a/b"), so compare checkpoints with ComparePaths.
	// A file that changed while it was read (or whose read failed part way) is passed to fn
	// with the bytes that were read and also reported by Problems.
	Walk(ctx context.Context, after string, fn func(Entry, io.Reader) error) error
	// Problems lists the entries the last walk could not read, and those that changed while
	// it read them.
	Problems() []Problem
	// Close releases the snapshot (ends the database transaction, stops pg_dump).
	Close() error
}

// Sink receives restored entries. Write is called in the order of the restore point (parents
// before children); Finish completes the restore (directory modes and mtimes, database
// validation) and reports whether the restored data reproduces the snapshot's facts.
type Sink interface {
	Write(ctx context.Context, e Entry, content io.Reader) error
	Finish(ctx context.Context, facts map[string]string) (Validation, error)
}

// FileSink is a Sink that can write several files at once. PrepareFile is called in the
// restore point's order, like Write, and does what must happen in that order (checking the
// path, creating the parent directory); the FileWrite it returns writes the file's content
// and may run on another goroutine, concurrently with other files' writes and with later
// calls of Write and PrepareFile. Every FileWrite must have returned before Finish.
type FileSink interface {
	Sink
	PrepareFile(ctx context.Context, e Entry) (FileWrite, error)
}

// FileWrite writes one prepared file from content, which returns an error instead of io.EOF
// if the content turns out to be wrong; the file then never appears under its name. It must
// be called exactly once.
type FileWrite func(ctx context.Context, content io.Reader) error

// Validation is what a sink checked after writing everything.
type Validation struct {
	// Checked names what was compared, e.g. "row counts of 12 tables".
	Checked string
	// Mismatches lists every fact that differs; empty means verified.
	Mismatches []string
}

// OK reports whether the restore reproduced every fact.
func (v Validation) OK() bool { return len(v.Mismatches) == 0 }
