// Package repo is drflow's backup repository: content-defined, deduplicated, compressed and
// client-side encrypted restore points of one dataset inside one location's providers.Store.
// It writes restore points (Backup), lists and describes them (Points, Manifest), restores and
// verifies them (Restore, Verify), replicates them as ciphertext (Copy) or as a catalog
// entry without content (CopyMetadata), removes the points a retention policy does not
// keep (Prune) and the chunks no point needs any more (GC), and names a point's objects for
// legal holds (PointObjects, CoverPoint), whose records it enforces everywhere.
//
// # Layout (format version 1)
//
// Every object of a dataset lives under datasets/<ds>/:
//
//	keys/...                  wrapped DEKs, owned by internal/keys (repo calls DataKeys only)
//	packs/<2 hex>/<pack id>   packs: sealed blobs, then the pack's index as a trailer
//	index/<pack id>           the pack's index, written after the pack is complete
//	points/<point id>         manifests, written last with a conditional create
//	checkpoints/<run>/state   the sealed resume state of a running backup
//	checkpoints/<run>/frames/<n>  entry frames of that backup's manifest, already sealed
//	leases/<run>              a running backup's, copy's (copy-...) or GC's (gc-...) lease (plain JSON)
//	condemned/<list>          packs a GC found unreferenced (plain JSON)
//	catalog/<point id>.json   catalog entries (CopyMetadata), in metadata-only locations
//
// A pack ID is 16 random bytes in hex (packs are streamed before their content is known). A
// point ID is DataAsOf in UTC, "20060102T150405.000Z", a dash and 8 random hex digits, so
// that listing points/ yields the points in time order without reading any manifest.
//
// Sealed objects start with a clear preamble: a 4-byte magic ("DRFM" manifest, "DRFI" index,
// "DRFC" checkpoint), the format version (1) and the key epoch (uint32 big endian), which
// says which data key opens the rest. Everything is sealed with the dataset's DataKey of
// that epoch (AES-256-GCM, random nonces), and every AAD starts with a domain string
// ("drflow blob v1", "drflow pack index v1", "drflow manifest frame v1", "drflow checkpoint
// v1"), so that no sealed object opens as another kind.
//
// # Chunks, blobs and packs
//
// File content is cut by FastCDC (go-cdc-chunkers "fastcdc-v1.0.0": min 256 KiB, normal
// 1 MiB, max 4 MiB) with a gear table keyed by a value derived from the data key, so that
// chunk boundaries (visible as blob sizes) do not fingerprint known files. A chunk's ID is the
// DataKey's keyed BLAKE3 of its plaintext; a chunk already in the dataset (this epoch) is
// stored once. A chunk is compressed with zstd (fastest level) unless that saves less than
// 1/32, then sealed: blob = Seal(payload, AAD = "drflow blob v1\0" || chunk ID || flags),
// flags bit 0 = zstd.
//
// A pack is the concatenation of blobs, closed at 16 MiB or 65536 blobs, followed by its index
// object and that object's length (uint32 BE), so that an index can be rebuilt from its pack.
// The index object is preamble || Seal(count uint32 || count × (chunk ID [32], offset, sealed
// length, plaintext length uint32 BE, flags byte), AAD = domain || preamble || pack ID).
// Packs are streamed into Store.Put through an io.Pipe, at most two uploads in flight; a pack
// counts as durable once its index object is written too. A pack without an index (a crash
// between the two) is garbage for GC.
//
// # Manifests
//
// A manifest is preamble || frame 0 || frame 1 ... frame n. A frame is a length word (uint32
// BE; the top bit marks the final frame) and Seal(codec || payload) with AAD = domain ||
// preamble || dataset || point ID || frame index (uint32) || final flag; codec 0 is raw, 1 is
// zstd. So an edited, truncated, reordered, dropped or swapped frame, or a manifest moved to
// another point ID or dataset, fails authentication, and a manifest without its final frame is
// rejected as truncated.
//
// Frame 0 is the header, JSON (ManifestHeader: format, dataset, point, data_as_of, created,
// attempts, source kind and description, key epoch, algorithms, facts, the first 100
// problems and their count, totals), at most 4 MiB; Manifest reads only the preamble and
// this frame. Frames 1..n hold at most 1 MiB of records each, a record being type (1 byte) ||
// uvarint length || body:
//
//	1 entry    type, mode, mtime (seconds, nanoseconds+1; 0 = unknown), path, link target
//	2 chunks   up to 1024 × (chunk ID, plaintext length) of the open file entry
//	3 end      size and BLAKE3-256 of the entry's content (zero for dirs and links)
//	4 problem  path and error of an entry the source could not read
//	5 final    entry and problem counts; the last record of the final frame
//
// Entries appear in sources.ComparePaths order. Readers enforce the grammar (entry, chunks*,
// end)*, problem*, final — sizes must add up and counts must match — and reject paths that
// are not relative, clean, slash-separated paths. Writers and readers hold one frame at a
// time, so memory does not grow with the number of entries or with the size of a file.
//
// # Backup pipeline and memory
//
// One walker goroutine reads the snapshot in order, chunks each stream and hashes each file
// (BLAKE3); GOMAXPROCS workers compute chunk IDs, skip known chunks, compress and seal; one
// assembler takes results in order, dedups authoritatively, appends blobs to the open pack
// and records to the manifest. At most 4×workers+4 chunks are between walker and assembler.
// Buffers come from a pool of 128 KiB size classes that keeps at most 32 MiB idle (sync.Pool
// kept every class's peak alive across collections). The chunk index (about 80 bytes per
// distinct chunk, 80 MB per TiB at 1 MiB chunks) is the only state that grows with the
// dataset; the set of chunks a point references is a mark in it, not a second map.
//
// # Checkpoints and resume
//
// Entry frames are sealed as they fill, or early when a checkpoint is due. A frame whose
// records reference only durable packs is written as checkpoints/<run>/frames/<n>; then the
// state records the last completed entry and the position where its successor starts (frame
// and offset). A backup with the same run ID re-reads those frames (authenticating them and
// rebuilding totals and the set of referenced chunks), truncates the last one at that
// position, keeps the first attempt's point ID and DataAsOf, and walks on after the last
// completed entry; packs uploaded by the failed attempt are found again by dedup. The
// manifest is assembled from preamble, header, the frame parts, the frames still in memory
// and the final frame, and written with PutOptions.IfNotExists; then the run's checkpoint
// objects are deleted. A checkpoint that cannot be used is discarded and the run starts
// over. Checkpoints are at least DefaultCheckpointEvery (Options.CheckpointEvery) apart.
//
// Just before the manifest, the run record checkpoints/<run>/done (sealed, naming the point)
// is written, and it outlives the checkpoint: an attempt retried after an earlier one wrote
// its manifest but died before reporting (a killed worker), even one that never
// checkpointed, reports that point instead of writing a second restore point of one run.
//
// # Restore and verify
//
// The manifest is streamed; chunk references are looked up in the dataset's indexes (all
// epochs), adjacent blobs of a pack are fetched with one range read (up to 4 MiB), parallel
// readers open, decompress (bounded by the indexed plaintext length) and check each chunk's
// ID before anything reaches the sink, within a 32 MiB read-ahead window, in manifest order.
// A file's BLAKE3 and size are checked before the sink sees the end of its content. Failures
// are *IntegrityError (entry path, chunk ID, pack, reason); audit events carry only chunk and
// pack IDs. Verify does the same without a sink, optionally on a reproducible sample of
// distinct chunks (plus an index lookup of every reference). Reads load the indexes of
// condemned packs last, so that a chunk with another copy is read from the copy GC keeps.
//
// # Retention and garbage collection
//
// Prune applies a RetentionPolicy (keep_last, keep_daily, keep_weekly, keep_monthly; days,
// ISO weeks and months of DataAsOf in UTC; a point is kept if any rule keeps it) and deletes
// the manifests of the other points, except held ones, which are kept and reported as held:
// those that an active legal hold in the store's hold records (internal/holds,
// datasets/<ds>/holds/) covers, or whose order selects them (by ID or data_as_of range, or as
// an ongoing hold's newer points: a placement writes the order before the coverage), read
// once per run; and those whose manifest is under the store's legal hold or an active
// retention (Stat says so, or Delete fails with ErrImmutable). drflow's records are enforced
// on every store, also those that cannot hold objects (fake-gcs-server, Azurite): there only
// they protect the data. Every deletion and every refusal is an audit event
// (restore_point.pruned, ok or denied, "kept: legal hold <names>").
//
// GC then frees the packs that nothing references, by mark and sweep in two phases, safe
// against backups running at the same time:
//
//  1. A backup writes its lease, leases/<run> = {started, refreshed, seen}, before it reads
//     anything, refreshes it every quarter of the lease TTL (default 30 minutes) and deletes
//     it at the end. Before loading the chunk index it reads every condemned list, leaves
//     their packs out of the index (it never deduplicates against a condemned pack, and
//     uploads such chunks again) and records the lists' names in the lease's seen.
//  2. GC reads the leases first (a live one was refreshed within the TTL), then the
//     condemned lists, then marks every chunk of every manifest and of every checkpoint that
//     a resume may still use. It fails, deleting nothing, if a manifest cannot be read. It
//     reads every pack index and keeps one copy of each referenced chunk: in a pack that is
//     not condemned if there is one. A pack that keeps no chunk is unreferenced; so is a pack
//     without an index. Packs that keep some chunks stay whole (no repacking yet); GC reports
//     their unreferenced bytes.
//  3. An unreferenced pack that is not condemned yet is condemned: it goes into this run's
//     condemned list with the time. One already condemned is deleted (index first, then
//     pack) if the grace period (default 1 hour) has passed since it was condemned and every
//     live lease has seen a list that names it; otherwise it waits. A condemned pack that is
//     referenced again (by a backup that had reused it before it was condemned) is rescued.
//  4. The sweep deletes the doomed packs, then writes the new list (the packs still waiting,
//     each naming every list that has held it, and the newly condemned), then deletes the
//     lists it read.
//  5. Legal holds: GC reads the hold records after the leases, and again before the sweep.
//     A pack (or its index) that an active hold covers is never condemned, and leaves the
//     condemned list if it was on it (like a rescued pack; once the hold is released a later
//     run condemns it afresh); when choosing which copy of a chunk to keep, a held pack comes
//     first, so that unheld duplicates can still go. Right before each deletion GC lists the
//     records once more (re-reading them if they changed) and keeps a pack they now cover; a
//     deletion the store refuses (ErrImmutable: retention, or a provider hold set since) keeps
//     the pack condemned. Neither is an error: GC reports held packs (PacksHeld, HeldBy) and
//     names the holds in its audit event.
//
// Why this is safe: a backup that finished before GC read the leases wrote its manifest
// before it released its lease, so GC marks it. One that was running then either saw the
// pack condemned (and left it out of its index) or blocks its deletion with its lease. One
// that starts later reads lists that still name every pack GC is about to delete, or finds
// those packs gone. A backup whose lease went unrefreshed for half the TTL (a frozen
// process) fails before writing its manifest with ErrLeaseLapsed; its retry resumes, and a
// checkpoint that references a collected chunk is discarded. A restore that loaded the index
// before a duplicate copy was deleted fails with the retryable ErrPackCollected, not with an
// integrity error. Lease times come from the workers' clocks, which must agree to within a
// fraction of the lease TTL. One GC of a dataset and location runs at a time (the retention
// workflow's ID). Replicas are collected too: copies into them hold leases (see "Copy").
//
// A hold placement records a point's objects (Repo.PointObjects: manifest, every pack that
// holds any of its chunks, duplicates included, their indexes, the wrapped keys) before it
// sets the provider holds. Repo.CoverPoint makes that safe against a GC as a copy is: it
// writes a lease that has seen no condemned list before it lists anything, fails with the
// retryable ErrGCRunning if a GC's lease is live (that GC may have read the leases before),
// and records the coverage before it releases the lease. A GC that reads the leases
// meanwhile deletes no condemned pack; one that starts later reads the coverage. (A
// placement that records coverage without CoverPoint is seen by the checks before the
// sweep and each deletion, but a record that lands between such a check and its deletion
// can name a duplicate that is then gone; no point loses data that way.)
//
// Checkpoints and run records of runs without a live lease whose state is older than the
// checkpoint TTL (default 8 days, beyond the 7 days a backup activity may be retried) are
// deleted, their packs then condemned; dead leases are deleted. Every GC run is audited (gc).
//
// # Copy
//
// Copy needs no keys: it copies the packs and indexes the destination lacks (all of the
// dataset's: which packs a point uses is sealed in its manifest; packs that GC deletes
// meanwhile are skipped), then the wrapped key objects (replacing ones that differ), then
// the manifest last. Copy never overwrites or deletes a pack, index or manifest (conditional
// creates; a different manifest is an error). A wrapped key object that differs is replaced
// only if no active legal hold in the destination's hold records covers it (and the store
// accepts the overwrite): otherwise Copy fails with providers.ErrImmutable, naming the
// object and the holds, and the copy is audited as denied. A held replica thus keeps the key
// objects it was held with, wrapped by a KEK version that must stay usable while it is held.
// CopyMetadata writes a catalog entry with counts, sizes and the manifest's SHA-256 — no
// names, keys or content; PruneCatalog applies a retention policy to those entries, keeping
// held ones (by the location's hold records, or the store's hold or retention).
//
// Copy keeps every object's name, so Repo.PointObjects on a Repo opened on a replica's
// store with the dataset's keys lists a point's objects there; CatalogObjects lists a
// catalog entry at a metadata-only location.
//
// A copy is safe against a GC of the destination as a backup is against its own GC:
//
//  1. GC writes a lease of its own, leases/gc-<run>, before it reads the leases, and deletes
//     it when it ends.
//  2. Copy writes its lease, leases/copy-<id>, before it reads anything, with no condemned
//     list seen (it cannot leave condemned packs out: it has no keys to write their chunks
//     elsewhere), refreshes it like a backup and deletes it at the end, also on failure.
//     Then it notes the live GC leases and reads the condemned lists; then it lists the
//     destination and skips the packs it has.
//  3. A GC that read the leases after step 2 deletes no condemned pack while the copy runs:
//     the copy's lease has seen no list. Once the manifest is written, GC marks its packs and
//     rescues those that were condemned.
//  4. Only a GC that read the leases earlier could delete a pack the copy skipped, and only one
//     condemned in a list the copy read (GC deletes packs before it replaces the lists it
//     read). So, before the manifest, if the copy skipped such a pack: should one of the GC
//     leases noted in step 2 still be live, Copy fails with the retryable ErrGCRunning; if
//     none is, it copies again every such pack or index that is gone. Then it confirms its
//     lease (ErrLeaseLapsed if it went unrefreshed for half the TTL) and writes the manifest.
package repo
