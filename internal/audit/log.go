package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/drflow/drflow/providers"
)

// ErrClosed is returned by a Log's methods after Close.
var ErrClosed = errors.New("audit log closed")

var _ Recorder = (*Log)(nil)

// Defaults and limits of Options.
const (
	DefaultSegmentEvents   = 1000
	DefaultCheckpointEvery = 16
	DefaultWriteTimeout    = time.Minute
	maxSegmentEvents       = 100_000
	// maxConflicts bounds how often one batch is rebuilt because another writer appended
	// first. Every conflict means someone else made progress, so hitting it takes a pathological
	// number of writers.
	maxConflicts = 100
)

// Options configure a Log.
type Options struct {
	// Store is the region's location; the log lives under audit/<Region>/ in it.
	Store providers.Store
	// Region names the log: lower-case letters, digits, '-', '_' and '.'.
	Region string
	// Signer signs every record and checkpoint (see LoadOrCreateSigner). A region's log is
	// verified with one public key: Open refuses a log whose last segment another key signed,
	// so replacing the key means starting a new region log.
	Signer ed25519.PrivateKey
	// Clock stamps records; nil means time.Now. Record times never go backwards even if
	// Clock does.
	Clock func() time.Time
	// SegmentEvents bounds the records in one segment object (default 1000). In the default
	// durable mode a segment holds one group commit: all the events that were waiting while
	// the previous segment was being written.
	SegmentEvents int
	// CheckpointEvery is how many segments this Log writes between two signed checkpoints of
	// the head (default 16); Close writes one too. Records after the newest checkpoint are the
	// window in which deleting the end of the log goes unnoticed (see Verify).
	CheckpointEvery int
	// Buffered makes Record return as soon as the event is queued in memory. Events are
	// written when SegmentEvents of them are queued, and by Flush and Close; a crash loses the
	// queued ones. Off by default: Record returns once its event is durable.
	Buffered bool
	// WriteTimeout bounds each store request of the log (default 1 minute).
	WriteTimeout time.Duration
	// Retention, if set, is called for each segment and checkpoint about to be written; a
	// non-zero Until protects the object with that retention. It is ignored, with a warning,
	// if the store does not enforce retention.
	Retention func(now time.Time) providers.Retention
	// Logger receives warnings (a failed checkpoint, a writer conflict); nil means none.
	Logger *zap.Logger
}

// Log is the append-only audit log of one region. It implements Recorder and is safe for
// concurrent use; several Logs (in one process or many) may append to the same region, and
// their records interleave in one chain.
//
// Record in the default durable mode queues the event and waits until a committer goroutine
// has written it: the committer writes every queued event (up to SegmentEvents) as one new
// segment with one conditional create, so concurrent callers share one store write (group
// commit). If another writer created that segment name first, the committer reads that
// writer's segments, rebuilds its batch on top of them and tries the next name: the chain
// never forks, and a crash never leaves a partial segment because each segment appears whole
// or not at all.
type Log struct {
	store     providers.Store
	region    string
	signer    ed25519.PrivateKey
	pub       ed25519.PublicKey
	clock     func() time.Time
	segEvents int
	ckEvery   int
	buffered  bool
	timeout   time.Duration
	retention func(time.Time) providers.Retention
	log       *zap.Logger

	// ctx carries the committer's store requests; Close cancels it when it gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{} // wakes the committer; capacity 1
	exited chan struct{} // closed when the committer returns

	mu       sync.Mutex
	pending  []*request
	nEvents  int // events (not barriers) in pending
	barriers int // barriers in pending
	closed   bool
	failed   error // a buffered write failed; Record refuses until a Flush succeeds
	lost     int   // buffered events dropped at Close
	head     Head

	// Owned by the committer goroutine; by Open before it starts and by Close after it ends.
	tail         tailState
	stale        bool // the store may hold segments after tail
	sinceCheck   int  // segments written since the last checkpoint
	checkpointed uint64

	enqueued func() // test hook: called after each request is queued
}

type tailState struct {
	seq  uint64
	hash Hash
	time time.Time
}

// request is one queued event, or a barrier (Flush) that completes once everything queued
// before it is written.
type request struct {
	event   Event
	barrier bool
	wait    bool // someone waits on done
	taken   bool // the committer has it
	done    chan error
}

// Open opens region's log in opts.Store and resumes its chain from the last segment there,
// after checking that segment's records and signatures. It fails if the last segment is
// damaged or signed with another key: a log that cannot be continued safely is not continued.
// Finding the last segment takes one List of the region's segments, whose cost grows with
// their number.
//
//nolint:gocyclo // recovery of a log's tail: each way a segment can end torn is a case
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.Store == nil {
		return nil, errors.New("audit open: no store")
	}
	if err := validateRegion(opts.Region); err != nil {
		return nil, err
	}
	if len(opts.Signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit open %s: signer is %d bytes, want an ed25519 private key (%d)", opts.Region, len(opts.Signer), ed25519.PrivateKeySize)
	}
	if opts.SegmentEvents < 0 || opts.SegmentEvents > maxSegmentEvents || opts.CheckpointEvery < 0 || opts.WriteTimeout < 0 {
		return nil, fmt.Errorf("audit open %s: SegmentEvents must be 0 to %d, CheckpointEvery and WriteTimeout not negative", opts.Region, maxSegmentEvents)
	}
	l := &Log{
		store:     opts.Store,
		region:    opts.Region,
		signer:    opts.Signer,
		pub:       PublicKey(opts.Signer),
		clock:     opts.Clock,
		segEvents: opts.SegmentEvents,
		ckEvery:   opts.CheckpointEvery,
		buffered:  opts.Buffered,
		timeout:   opts.WriteTimeout,
		retention: opts.Retention,
		log:       opts.Logger,
		kick:      make(chan struct{}, 1),
		exited:    make(chan struct{}),
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if l.segEvents == 0 {
		l.segEvents = DefaultSegmentEvents
	}
	if l.ckEvery == 0 {
		l.ckEvery = DefaultCheckpointEvery
	}
	if l.timeout == 0 {
		l.timeout = DefaultWriteTimeout
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	l.log = l.log.With(zap.String("audit_region", l.region))
	if !l.store.Capabilities().ConditionalCreate {
		// Without it two writers could both create the same segment name, and one would
		// silently replace the other's records.
		return nil, fmt.Errorf("audit open %s: location %s has no atomic conditional create, which the audit log needs",
			l.region, l.store.Location())
	}
	if l.retention != nil && !l.store.Capabilities().Retention {
		l.log.Warn("audit log: the store does not enforce retention; segments and checkpoints are written without it",
			zap.String("location", l.store.Location().String()))
		l.retention = nil
	}
	if err := l.resume(ctx); err != nil {
		return nil, fmt.Errorf("audit open %s: %w", l.region, err)
	}
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go l.run()
	return l, nil
}

// resume finds the last segment and takes the chain's tail from it.
func (l *Log) resume(ctx context.Context) error {
	prefix := segmentPrefix(l.region)
	var last string
	var first uint64
	err := l.store.List(ctx, prefix, func(info providers.ObjectInfo) error {
		seq, ok := parseSeqName(info.Key, prefix, segmentExt)
		if !ok {
			return &ChainError{Key: info.Key, Reason: "unexpected object among the segments (want <12-digit first seq>" + segmentExt + ")"}
		}
		last, first = info.Key, seq
		return nil
	})
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	l.tail = tailState{hash: GenesisHash(l.region)}
	if last != "" {
		c := newChain(l.region, l.pub)
		c.next, c.trustPrev = first, true
		if err := readObject(ctx, l.store, last, func(r io.Reader) error { return c.segment(last, first, r, nil) }); err != nil {
			return fmt.Errorf("resume from %s: %w", last, err)
		}
		l.tail = tailState{seq: c.next - 1, hash: c.prev, time: c.prevTime}
	}
	l.head = Head{Seq: l.tail.seq, Hash: l.tail.hash}
	return nil
}

// Record appends e to the log. In durable mode (the default) it returns once e is written;
// in buffered mode once e is queued. It fills in e.Time if zero and rejects events that fail
// Validate. Any error means e may not be in the log, so the audited action must not proceed;
// under an ambiguous store failure (a write that failed but took effect) e may be in the log
// although Record failed.
func (l *Log) Record(ctx context.Context, e Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	if e.Time.IsZero() {
		e.Time = l.clock()
	}
	e.Time = e.Time.Round(0).UTC()
	if err := Validate(e); err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	r := &request{event: e, wait: !l.buffered}
	if r.wait {
		r.done = make(chan error, 1)
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return fmt.Errorf("audit record: %w", ErrClosed)
	case l.failed != nil:
		err := l.failed
		l.mu.Unlock()
		return fmt.Errorf("audit record: an earlier buffered write failed (Flush retries it): %w", err)
	}
	l.pending = append(l.pending, r)
	l.nEvents++
	wake := r.wait || l.nEvents >= l.segEvents
	l.mu.Unlock()
	if l.enqueued != nil {
		l.enqueued()
	}
	if wake {
		l.wake()
	}
	if !r.wait {
		return nil
	}
	return l.await(ctx, r, "record")
}

// Flush returns once every event queued before it has been written, and retries a failed
// buffered write. In durable mode it has nothing to wait for beyond Records in flight.
func (l *Log) Flush(ctx context.Context) error {
	r := &request{barrier: true, wait: true, done: make(chan error, 1)}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("audit flush: %w", ErrClosed)
	}
	l.pending = append(l.pending, r)
	l.barriers++
	l.mu.Unlock()
	l.wake()
	return l.await(ctx, r, "flush")
}

// await waits for r's outcome or for ctx. A request that the committer has not yet taken is
// withdrawn; one that it has taken may still be written.
func (l *Log) await(ctx context.Context, r *request, op string) error {
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("audit %s: %w", op, err)
		}
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !r.taken {
		for i, p := range l.pending {
			if p == r {
				l.pending = append(l.pending[:i], l.pending[i+1:]...)
				l.uncount(r)
				break
			}
		}
		return fmt.Errorf("audit %s: %w", op, ctx.Err())
	}
	return fmt.Errorf("audit %s: %w (the write was under way and may still complete)", op, ctx.Err())
}

// Head returns the newest record this Log has written or seen.
func (l *Log) Head() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// PublicKey returns the key that verifies this log.
func (l *Log) PublicKey() ed25519.PublicKey { return l.pub }

// Close writes what is queued, writes a checkpoint of the head and stops the log. If ctx ends
// first, queued and in-flight writes are abandoned. Buffered events that could not be
// written are reported in the error.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.wake()
	defer l.cancel()
	select {
	case <-l.exited:
	case <-ctx.Done():
		l.cancel()
		<-l.exited
		return fmt.Errorf("audit close %s: %w", l.region, ctx.Err())
	}
	var errs []error
	l.mu.Lock()
	if l.lost > 0 {
		errs = append(errs, fmt.Errorf("audit close %s: %d buffered events were not written: %w", l.region, l.lost, l.failed))
	}
	l.mu.Unlock()
	if l.tail.seq > l.checkpointed {
		if err := l.writeCheckpoint(ctx); err != nil {
			errs = append(errs, fmt.Errorf("audit close %s: %w", l.region, err))
		}
	}
	return errors.Join(errs...)
}

func (l *Log) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run is the committer: it writes queued events until Close.
func (l *Log) run() {
	defer close(l.exited)
	for range l.kick {
		stalled := l.drain()
		l.mu.Lock()
		if !l.closed {
			l.mu.Unlock()
			continue
		}
		if len(l.pending) > 0 && !stalled {
			// Queued while closing; write them too.
			l.mu.Unlock()
			l.wake()
			continue
		}
		rest := l.pending
		l.pending, l.nEvents, l.barriers = nil, 0, 0
		for _, r := range rest {
			if !r.barrier {
				l.lost++
			}
		}
		l.mu.Unlock()
		for _, r := range rest {
			if r.wait {
				r.done <- ErrClosed
			}
		}
		return
	}
}

// drain writes batches until nothing is ready. It reports whether it stopped on a failed
// buffered write, which stays queued for the next Flush.
func (l *Log) drain() (stalled bool) {
	for {
		reqs, events := l.take()
		if len(reqs) == 0 {
			return false
		}
		var err error
		if len(events) > 0 {
			err = l.commit(events)
		}
		if l.buffered {
			l.mu.Lock()
			if err != nil {
				l.requeue(reqs, err)
			} else {
				l.failed = nil
			}
			l.mu.Unlock()
			if err != nil {
				// Nobody waits for these events; Record refuses and Flush returns the error
				// until a retry succeeds.
				l.log.Warn("audit buffered write failed; recording is refused until Flush succeeds",
					zap.Int("events", len(events)), zap.Error(err))
			}
		}
		for _, r := range reqs {
			if r.wait {
				r.done <- err
			}
		}
		if err != nil && l.buffered {
			return true
		}
	}
}

// take removes the next batch from the queue: up to segEvents events, with the barriers among
// and right after them. In buffered mode it takes nothing until a segment is full, a Flush
// waits or the log closes.
func (l *Log) take() ([]*request, []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil, nil
	}
	if l.buffered && !l.closed && l.barriers == 0 && l.nEvents < l.segEvents {
		return nil, nil
	}
	var events []Event
	i := 0
	for ; i < len(l.pending); i++ {
		r := l.pending[i]
		if !r.barrier {
			if len(events) == l.segEvents {
				break
			}
			events = append(events, r.event)
		}
		r.taken = true
		l.uncount(r)
	}
	reqs := make([]*request, i)
	copy(reqs, l.pending[:i])
	clear(l.pending[:i])
	l.pending = l.pending[i:]
	if len(l.pending) == 0 {
		l.pending = nil
	}
	return reqs, events
}

// requeue puts the events of a failed buffered batch back at the front of the queue.
// Barriers are not requeued: they report the failure. l.mu is held.
func (l *Log) requeue(reqs []*request, err error) {
	var back []*request
	for _, r := range reqs {
		if !r.barrier {
			r.taken = false
			l.nEvents++
			back = append(back, r)
		}
	}
	l.pending = append(back, l.pending...)
	l.failed = err
}

func (l *Log) uncount(r *request) {
	if r.barrier {
		l.barriers--
	} else {
		l.nEvents--
	}
}

// commit writes events as the next segment, rebuilding it on top of other writers' segments
// as often as they get there first.
func (l *Log) commit(events []Event) error {
	for attempt := 1; ; attempt++ {
		if l.stale {
			if err := l.catchUp(); err != nil {
				return err
			}
		}
		first := l.tail.seq + 1
		if l.tail.seq+uint64(len(events)) > maxSeq {
			return fmt.Errorf("audit %s: log is full (sequence numbers beyond %d do not fit the object names)", l.region, uint64(maxSeq))
		}
		data, tail, err := l.seal(first, events)
		if err != nil {
			return err
		}
		key := segmentKey(l.region, first)
		ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
		_, err = l.store.Put(ctx, key, bytes.NewReader(data), l.putOptions(segmentContent))
		cancel()
		if err == nil {
			l.advance(tail)
			l.sinceCheck++
			if l.sinceCheck >= l.ckEvery {
				ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
				if err := l.writeCheckpoint(ctx); err != nil {
					l.log.Warn("audit checkpoint failed; the window in which truncation goes unnoticed grows until the next one", zap.Error(err))
				}
				cancel()
			}
			return nil
		}
		// Whatever went wrong, the store may now hold segments this Log has not seen: its own
		// (a write that failed but took effect) or another writer's.
		l.stale = true
		if errors.Is(err, providers.ErrExists) && attempt < maxConflicts {
			l.log.Debug("audit segment name taken by another writer; appending after its segments", zap.String("key", key))
			continue
		}
		return fmt.Errorf("audit %s: write %s: %w", l.region, key, err)
	}
}

// seal builds the segment of events starting at seq first on top of the tail.
func (l *Log) seal(first uint64, events []Event) ([]byte, tailState, error) {
	tail := l.tail
	now := l.clock().Round(0).UTC()
	if now.Before(tail.time) {
		now = tail.time
	}
	var buf bytes.Buffer
	for i, e := range events {
		line, hash, err := sealRecord(record{
			Version: formatVersion,
			Region:  l.region,
			Seq:     first + uint64(i),
			Time:    now,
			Event:   e,
			Prev:    tail.hash,
		}, l.signer)
		if err != nil {
			return nil, tail, fmt.Errorf("audit %s: %w", l.region, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		tail = tailState{seq: first + uint64(i), hash: hash, time: now}
	}
	return buf.Bytes(), tail, nil
}

// catchUp reads the segments after the tail that other writers (or an ambiguous write of
// this one) added, checking that they continue the chain.
func (l *Log) catchUp() error {
	c := &chain{region: l.region, pub: l.pub, next: l.tail.seq + 1, prev: l.tail.hash, prevTime: l.tail.time}
	for {
		first := c.next
		key := segmentKey(l.region, first)
		ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
		err := readObject(ctx, l.store, key, func(r io.Reader) error { return c.segment(key, first, r, nil) })
		cancel()
		if errors.Is(err, providers.ErrNotFound) {
			l.stale = false
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit %s: read segments written after seq %d: %w", l.region, l.tail.seq, err)
		}
		l.advance(tailState{seq: c.next - 1, hash: c.prev, time: c.prevTime})
	}
}

func (l *Log) advance(t tailState) {
	l.tail = t
	l.mu.Lock()
	l.head = Head{Seq: t.seq, Hash: t.hash}
	l.mu.Unlock()
}

// writeCheckpoint writes a signed checkpoint of the tail.
func (l *Log) writeCheckpoint(ctx context.Context) error {
	t := l.tail
	data, err := sealCheckpoint(checkpoint{Version: formatVersion, Region: l.region, Seq: t.seq, Hash: t.hash, Time: t.time}, l.signer)
	if err != nil {
		return err
	}
	key := headKey(l.region, t.seq)
	_, err = l.store.Put(ctx, key, bytes.NewReader(data), l.putOptions(checkpointContent))
	if err != nil && !errors.Is(err, providers.ErrExists) { // ErrExists: the same head, written by another writer
		return fmt.Errorf("write checkpoint %s: %w", key, err)
	}
	l.sinceCheck = 0
	l.checkpointed = t.seq
	return nil
}

func (l *Log) putOptions(contentType string) providers.PutOptions {
	opts := providers.PutOptions{IfNotExists: true, ContentType: contentType}
	if l.retention != nil {
		opts.Retention = l.retention(l.clock())
	}
	return opts
}
