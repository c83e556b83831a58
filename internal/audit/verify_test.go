package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/local"
	"github.com/drflow/drflow/providers/storetest"
)

func TestAppendAndVerify(t *testing.T) {
	s := newStore(t)
	clock := newClock()
	l := openLog(t, Options{Store: s, Signer: newSigner(t), Clock: clock.Now})
	start := clock.Now()
	recordEvents(t, l, 1, 20)

	rep := verify(t, s, l.PublicKey())
	assert.Equal(t, region, rep.Region)
	assert.Equal(t, uint64(20), rep.Records)
	assert.Equal(t, 20, rep.Segments, "a durable Record without concurrency writes one segment")
	assert.Equal(t, uint64(1), rep.FirstSeq)
	assert.Equal(t, uint64(20), rep.LastSeq)
	assert.True(t, rep.FirstTime.After(start))
	assert.True(t, rep.LastTime.After(rep.FirstTime))
	assert.Equal(t, l.Head(), rep.Head)
	assert.Equal(t, uint64(20), rep.Head.Seq)
	assert.Equal(t, 1, rep.Checkpoints, "every 16 segments")
	assert.Equal(t, uint64(16), rep.Anchored)
	assert.Equal(t, uint64(4), rep.Unanchored)

	var got []Entry
	verify(t, s, l.PublicKey(), WithEntries(func(e Entry) error {
		got = append(got, e)
		return nil
	}))
	require.Len(t, got, 20)
	prev := GenesisHash(region)
	for i, e := range got {
		assert.Equal(t, uint64(i+1), e.Seq)
		assert.Equal(t, prev, e.Prev)
		want := event(i + 1)
		want.Time = e.Event.Time
		assert.Equal(t, want, e.Event)
		assert.False(t, e.Event.Time.IsZero(), "Record fills in the event time")
		prev = e.Hash
	}

	require.NoError(t, l.Close(context.Background()))
	rep = verify(t, s, l.PublicKey(), ExpectHead(rep.Head))
	assert.Equal(t, 2, rep.Checkpoints, "Close checkpoints the head")
	assert.Equal(t, uint64(0), rep.Unanchored)
}

func TestVerifyEmptyLog(t *testing.T) {
	rep := verify(t, newStore(t), PublicKey(newSigner(t)))
	assert.Equal(t, Report{Region: region, Head: Head{Hash: GenesisHash(region)}}, rep)
}

func TestVerifyStopsOnEntriesError(t *testing.T) {
	s := newStore(t)
	l := openLog(t, Options{Store: s, Signer: newSigner(t)})
	recordEvents(t, l, 1, 3)
	stop := errors.New("stop")
	_, err := Verify(context.Background(), s, region, l.PublicKey(), WithEntries(func(Entry) error { return stop }))
	assert.ErrorIs(t, err, stop)
}

// tamperLog writes 20 events in four segments of five (seqs 1, 6, 11 and 16) and removes the
// checkpoints, so that each tamper case shows what the segments alone reveal.
func tamperLog(t *testing.T) (*local.Store, ed25519.PrivateKey) {
	s := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, Clock: newClock().Now, Buffered: true, SegmentEvents: 5})
	recordEvents(t, l, 1, 20)
	require.NoError(t, l.Close(context.Background()))
	for _, k := range listKeys(t, s, headPrefix(region)) {
		deleteObject(t, s, k)
	}
	require.Equal(t, []string{seg(1), seg(6), seg(11), seg(16)}, listKeys(t, s, segmentPrefix(region)))
	verify(t, s, PublicKey(key))
	return s, key
}

func seg(first uint64) string { return segmentKey(region, first) }

func TestTamperDetected(t *testing.T) {
	other := newSigner(t)
	tests := []struct {
		name    string
		tamper  func(t *testing.T, s *local.Store, key ed25519.PrivateKey)
		wantKey string
		wantSeq uint64
		want    string
	}{
		{
			name: "edit a field of an event",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				lines[2] = bytes.Replace(lines[2], []byte(`"bytes":800`), []byte(`"bytes":1`), 1)
				putLines(t, s, seg(6), lines)
			},
			wantKey: seg(6), wantSeq: 8, want: "signature invalid",
		},
		{
			name: "flip a bit of a signature",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(11))
				r := parseLine(t, lines[0])
				r.Sig[7] ^= 1
				lines[0] = mustJSON(t, r)
				putLines(t, s, seg(11), lines)
			},
			wantKey: seg(11), wantSeq: 11, want: "signature invalid",
		},
		{
			name: "reorder two events",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				lines[1], lines[2] = lines[2], lines[1]
				putLines(t, s, seg(6), lines)
			},
			wantKey: seg(6), wantSeq: 7, want: "sequence gap: expected 7, found 8",
		},
		{
			name: "insert a forged event signed with another key",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				forged := forgeAfter(t, lines[1], event(99), other)
				putLines(t, s, seg(6), insert(lines, 2, forged))
			},
			wantKey: seg(6), wantSeq: 8, want: "signature invalid",
		},
		{
			name: "insert an event signed with the log's key that does not follow its predecessor",
			tamper: func(t *testing.T, s *local.Store, key ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				r := parseLine(t, lines[1])
				r.Seq, r.Event, r.Prev = 8, event(99), parseLine(t, lines[1]).Prev // links to record 6, not 7
				putLines(t, s, seg(6), insert(lines, 2, forge(t, r, key)))
			},
			wantKey: seg(6), wantSeq: 8, want: "prev hash mismatch: record 8 does not follow record 7",
		},
		{
			name: "insert an event signed with the log's key and linked to its predecessor",
			tamper: func(t *testing.T, s *local.Store, key ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				putLines(t, s, seg(6), insert(lines, 2, forgeAfter(t, lines[1], event(99), key)))
			},
			wantKey: seg(6), wantSeq: 9, want: "sequence out of order: expected 9, found 8",
		},
		{
			name: "replace an event, re-signed with the log's key",
			tamper: func(t *testing.T, s *local.Store, key ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				lines[2] = forgeAfter(t, lines[1], event(99), key)
				putLines(t, s, seg(6), lines)
			},
			wantKey: seg(6), wantSeq: 9, want: "prev hash mismatch: record 9 does not follow record 8",
		},
		{
			name: "delete an event in the middle",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				putLines(t, s, seg(6), append(lines[:2:2], lines[3:]...))
			},
			wantKey: seg(6), wantSeq: 8, want: "sequence gap: expected 8, found 9",
		},
		{
			name: "delete the first event",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				putLines(t, s, seg(1), segLines(t, s, seg(1))[1:])
			},
			wantKey: seg(1), wantSeq: 1, want: "segment content does not match its name",
		},
		{
			name: "delete a middle segment",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				deleteObject(t, s, seg(6))
			},
			wantKey: seg(6), wantSeq: 6, want: "segment missing: expected the segment starting at seq 6, the next one is " + seg(11),
		},
		{
			name: "delete the first segment",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				deleteObject(t, s, seg(1))
			},
			wantKey: seg(1), wantSeq: 1, want: "segment missing",
		},
		{
			name: "rename a segment",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				putObject(t, s, seg(12), getObject(t, s, seg(11)))
				deleteObject(t, s, seg(11))
			},
			wantKey: seg(11), wantSeq: 11, want: "segment missing",
		},
		{
			name: "swap two segments' contents",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				a, b := getObject(t, s, seg(6)), getObject(t, s, seg(11))
				putObject(t, s, seg(6), b)
				putObject(t, s, seg(11), a)
			},
			wantKey: seg(6), wantSeq: 6, want: "segment content does not match its name: the name says it starts at seq 6, its first record is seq 11",
		},
		{
			name: "insert an overlapping segment",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				putLines(t, s, seg(8), segLines(t, s, seg(6))[2:])
			},
			wantKey: seg(8), wantSeq: 8, want: "segment overlaps the one before",
		},
		{
			name: "append a segment signed with another key",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(16))
				putLines(t, s, seg(21), [][]byte{forgeAfter(t, lines[4], event(21), other)})
			},
			wantKey: seg(21), wantSeq: 21, want: "signature invalid",
		},
		{
			name: "stray object among the segments",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				putObject(t, s, segmentPrefix(region)+"notes.txt", []byte("hello\n"))
			},
			wantKey: segmentPrefix(region) + "notes.txt", want: "unexpected object",
		},
		{
			name: "white space added",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				lines[2] = bytes.Replace(lines[2], []byte(`"seq":8,`), []byte(`"seq": 8,`), 1)
				putLines(t, s, seg(6), lines)
			},
			wantKey: seg(6), wantSeq: 8, want: "not in canonical form",
		},
		{
			name: "member added",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				lines[2] = bytes.Replace(lines[2], []byte(`"seq":8,`), []byte(`"seq":8,"note":"x",`), 1)
				putLines(t, s, seg(6), lines)
			},
			wantKey: seg(6), wantSeq: 8, want: `unknown field "note"`,
		},
		{
			name: "record of another region, signed with the log's key",
			tamper: func(t *testing.T, s *local.Store, key ed25519.PrivateKey) {
				lines := segLines(t, s, seg(6))
				r := parseLine(t, lines[2])
				r.Region = "us"
				lines[2] = forge(t, r, key)
				putLines(t, s, seg(6), lines)
			},
			wantKey: seg(6), wantSeq: 8, want: `record belongs to region "us", not "eu"`,
		},
		{
			name: "last event backdated, re-signed with the log's key",
			tamper: func(t *testing.T, s *local.Store, key ed25519.PrivateKey) {
				lines := segLines(t, s, seg(16))
				r := parseLine(t, lines[4])
				r.Time = r.Time.Add(-time.Hour)
				lines[4] = forge(t, r, key)
				putLines(t, s, seg(16), lines)
			},
			wantKey: seg(16), wantSeq: 20, want: "time goes backwards: record 20 at",
		},
		{
			name: "segment cut short",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				data := getObject(t, s, seg(16))
				putObject(t, s, seg(16), data[:len(data)-10])
			},
			wantKey: seg(16), wantSeq: 20, want: "truncated",
		},
		{
			name: "segment emptied",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				putObject(t, s, seg(16), nil)
			},
			wantKey: seg(16), wantSeq: 16, want: "segment is empty",
		},
		{
			name: "blank line inserted",
			tamper: func(t *testing.T, s *local.Store, _ ed25519.PrivateKey) {
				putLines(t, s, seg(6), insert(segLines(t, s, seg(6)), 1, nil))
			},
			wantKey: seg(6), wantSeq: 7, want: "blank line",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, key := tamperLog(t)
			tt.tamper(t, s, key)
			_, err := Verify(context.Background(), s, region, PublicKey(key))
			requireChainError(t, err, tt.wantKey, tt.wantSeq, tt.want)
		})
	}
}

func requireChainError(t *testing.T, err error, key string, seq uint64, reason string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrChainBroken)
	var ce *ChainError
	require.ErrorAs(t, err, &ce, "%v", err)
	assert.Equal(t, key, ce.Key, "%v", err)
	assert.Equal(t, seq, ce.Seq, "%v", err)
	assert.Contains(t, ce.Reason, reason)
	assert.Contains(t, err.Error(), key)
}

// forgeAfter builds a record with event e that correctly follows the record in line.
func forgeAfter(t *testing.T, line []byte, e Event, key ed25519.PrivateKey) []byte {
	t.Helper()
	prev := parseLine(t, line)
	e.Time = prev.Time
	return forge(t, record{Version: formatVersion, Region: region, Seq: prev.Seq + 1, Time: prev.Time, Event: e, Prev: lineHash(line)}, key)
}

func insert(lines [][]byte, i int, line []byte) [][]byte {
	out := append([][]byte{}, lines[:i]...)
	out = append(out, line)
	return append(out, lines[i:]...)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestTruncationWithoutCheckpointsNeedsExpectHead(t *testing.T) {
	s, key := tamperLog(t) // checkpoints deleted too: the attacker removed them with the tail
	head := verify(t, s, PublicKey(key)).Head
	deleteObject(t, s, seg(16))

	// The residual window: a log that ends early looks complete on its own...
	rep := verify(t, s, PublicKey(key))
	assert.Equal(t, uint64(15), rep.LastSeq)
	assert.Equal(t, uint64(15), rep.Unanchored, "nothing vouches for these records")

	// ...but not next to a head kept elsewhere.
	_, err := Verify(context.Background(), s, region, PublicKey(key), ExpectHead(head))
	requireChainError(t, err, seg(16), 16, "segment missing: the log ends at seq 15, but the expected head is seq 20 (log truncated)")
}

func TestTruncationDetectedByCheckpoints(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, CheckpointEvery: 1})
	recordEvents(t, l, 1, 5)
	rep := verify(t, s, PublicKey(key))
	assert.Equal(t, 5, rep.Checkpoints)
	assert.Equal(t, uint64(5), rep.Anchored)
	assert.Equal(t, uint64(0), rep.Unanchored)

	deleteObject(t, s, seg(5))
	deleteObject(t, s, seg(4))
	_, err := Verify(context.Background(), s, region, PublicKey(key))
	requireChainError(t, err, seg(4), 4, "segment missing: the log ends at seq 3, but checkpoint "+headKey(region, 5)+" vouches for seq 5 (log truncated)")
}

func TestRetentionKeepsTheTailAndItsCheckpoints(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, CheckpointEvery: 1, Retention: func(now time.Time) providers.Retention {
		return providers.Retention{Mode: providers.Compliance, Until: now.Add(time.Hour)}
	}})
	recordEvents(t, l, 1, 2)
	for _, k := range []string{seg(2), headKey(region, 2)} {
		info, err := s.Stat(context.Background(), k)
		require.NoError(t, err)
		assert.Equal(t, providers.Compliance, info.Retention.Mode, k)
		assert.ErrorIs(t, s.Delete(context.Background(), k), providers.ErrImmutable, k)
	}
}

func TestRewrittenLogDetected(t *testing.T) {
	// Someone holding the signing key rewrites the whole log consistently. Checkpoints and
	// heads kept elsewhere still expose it.
	s := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, CheckpointEvery: 2})
	recordEvents(t, l, 1, 4)
	require.NoError(t, l.Close(context.Background()))
	head := verify(t, s, PublicKey(key)).Head

	for _, k := range listKeys(t, s, segmentPrefix(region)) {
		deleteObject(t, s, k)
	}
	l2 := openLog(t, Options{Store: s, Signer: key, CheckpointEvery: 1000})
	recordEvents(t, l2, 101, 104)

	_, err := Verify(context.Background(), s, region, PublicKey(key))
	requireChainError(t, err, seg(2), 2, "checkpoint mismatch: "+headKey(region, 2)+" says record 2 has hash")

	for _, k := range listKeys(t, s, headPrefix(region)) {
		deleteObject(t, s, k)
	}
	_, err = Verify(context.Background(), s, region, PublicKey(key), ExpectHead(head))
	requireChainError(t, err, seg(4), 4, "expected head mismatch: record 4 should have hash "+head.Hash.String())
}

func TestForgedCheckpointDetected(t *testing.T) {
	tests := []struct {
		name   string
		forge  func(t *testing.T, good []byte, other ed25519.PrivateKey) []byte
		seq    uint64
		reason string
	}{
		{"signed with another key", func(t *testing.T, good []byte, other ed25519.PrivateKey) []byte {
			var c checkpoint
			require.NoError(t, json.Unmarshal(good, &c))
			data, err := sealCheckpoint(c, other)
			require.NoError(t, err)
			return data
		}, 2, "checkpoint signature invalid"},
		{"edited", func(t *testing.T, good []byte, _ ed25519.PrivateKey) []byte {
			return bytes.Replace(good, []byte(`"seq":2`), []byte(`"seq":3`), 1)
		}, 2, "checkpoint signature invalid"},
		{"not one line", func(t *testing.T, good []byte, _ ed25519.PrivateKey) []byte {
			return append(good, good...)
		}, 2, "checkpoint is not one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			key := newSigner(t)
			l := openLog(t, Options{Store: s, Signer: key, CheckpointEvery: 2})
			recordEvents(t, l, 1, 2)
			k := headKey(region, 2)
			putObject(t, s, k, tt.forge(t, getObject(t, s, k), newSigner(t)))
			_, err := Verify(context.Background(), s, region, PublicKey(key))
			requireChainError(t, err, k, tt.seq, tt.reason)
		})
	}

	t.Run("renamed", func(t *testing.T) {
		s := newStore(t)
		key := newSigner(t)
		l := openLog(t, Options{Store: s, Signer: key, CheckpointEvery: 2})
		recordEvents(t, l, 1, 2)
		putObject(t, s, headKey(region, 9), getObject(t, s, headKey(region, 2)))
		_, err := Verify(context.Background(), s, region, PublicKey(key))
		requireChainError(t, err, headKey(region, 9), 9, "checkpoint content says seq 2, its name says 9")
	})
}

func TestVerifyRejectsBadArguments(t *testing.T) {
	s := newStore(t)
	_, err := Verify(context.Background(), s, "EU/x", PublicKey(newSigner(t)))
	assert.ErrorContains(t, err, "region")
	_, err = Verify(context.Background(), s, region, []byte("short"))
	assert.ErrorContains(t, err, "public key")
}

func TestVerifyReportsStoreErrorsAsSuch(t *testing.T) {
	inner := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: inner, Signer: key})
	recordEvents(t, l, 1, 2)
	s := storetest.NewFaulty(inner)
	s.On(storetest.MethodGet).Inject(storetest.Fail(nil))
	_, err := Verify(context.Background(), s, region, PublicKey(key))
	assert.ErrorIs(t, err, storetest.ErrInjected)
	assert.NotErrorIs(t, err, ErrChainBroken, "an unreadable store is not a tampered log")
}

func TestVerifyWithWrongKey(t *testing.T) {
	s := newStore(t)
	l := openLog(t, Options{Store: s, Signer: newSigner(t)})
	recordEvents(t, l, 1, 1)
	_, err := Verify(context.Background(), s, region, PublicKey(newSigner(t)))
	requireChainError(t, err, seg(1), 1, "signature invalid")
}

// Since checks a log from a signed checkpoint on, as evidence packs carry it: the records
// before it need not be there, and the first one after it must follow the checkpoint's hash.
func TestVerifySinceCheckpoint(t *testing.T) {
	s := newStore(t)
	key := newSigner(t)
	l := openLog(t, Options{Store: s, Signer: key, Clock: newClock().Now, Buffered: true, SegmentEvents: 5, CheckpointEvery: 2})
	recordEvents(t, l, 1, 20)
	require.NoError(t, l.Close(context.Background()))
	full := verify(t, s, PublicKey(key))
	require.Contains(t, listKeys(t, s, headPrefix(region)), headKey(region, 10))

	// The records up to the checkpoint are gone; the rest verifies from it.
	deleteObject(t, s, seg(1))
	deleteObject(t, s, seg(6))
	var seqs []uint64
	rep := verify(t, s, PublicKey(key), Since(10), WithEntries(func(e Entry) error { seqs = append(seqs, e.Seq); return nil }))
	assert.Equal(t, uint64(11), seqs[0])
	assert.Len(t, seqs, 10)
	assert.Equal(t, full.Head, rep.Head)
	assert.Equal(t, full.Anchored, rep.Anchored, "the checkpoints after the anchor still vouch")

	// Without that checkpoint there is nothing to start from.
	_, err := Verify(context.Background(), s, region, PublicKey(key), Since(5))
	requireChainError(t, err, headKey(region, 5), 5, "anchor checkpoint missing")

	// A forged first record after the anchor does not follow the checkpoint's hash.
	lines := segLines(t, s, seg(11))
	r := parseLine(t, lines[0])
	r.Prev = Hash{1}
	lines[0] = forge(t, r, key)
	deleteObject(t, s, seg(11))
	putLines(t, s, seg(11), lines)
	_, err = Verify(context.Background(), s, region, PublicKey(key), Since(10))
	requireChainError(t, err, seg(11), 11, "prev hash mismatch")
}
