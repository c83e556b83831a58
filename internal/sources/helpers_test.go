package sources

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// testAdminDSN is the machine's PostgreSQL, which the tests need (trust auth for postgres).
const testAdminDSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable"

// pgStartHint says how to bring the machine's PostgreSQL up after a fresh boot.
const pgStartHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

// pgAdmin connects to the test server as postgres. It fails, never skips: CI must run the
// PostgreSQL tests.
func pgAdmin(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testAdminDSN)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres (%v); %s", err, pgStartHint)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// uniqueName returns a database name no other test (or test run) uses.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// dbDSN is the DSN of database name on the test server.
func dbDSN(name string) string {
	return "host=127.0.0.1 port=5432 user=postgres sslmode=disable dbname=" + name
}

// createDB creates a database that is dropped when the test ends, and returns a connection
// to it.
func createDB(t *testing.T, admin *pgx.Conn) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	name := uniqueName("drflow_src")
	_, err := admin.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() { dropDB(t, name) })
	conn, err := pgx.Connect(ctx, dbDSN(name))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return name, conn
}

// dropDB drops name if it exists, with a connection of its own: the test's admin connection
// may be closed by then.
func dropDB(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testAdminDSN)
	if err != nil {
		t.Errorf("drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop database %s: %v", name, err)
	}
}

// transfer walks snap into sink the way the engine does, with the source and the sink on
// either side of a pipe in different goroutines, and returns the entries that went through.
func transfer(ctx context.Context, snap Snapshot, after string, sink Sink) ([]Entry, error) {
	var entries []Entry
	err := snap.Walk(ctx, after, func(e Entry, r io.Reader) error {
		entries = append(entries, e)
		if r == nil {
			return sink.Write(ctx, e, nil)
		}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := sink.Write(ctx, e, pr)
			pr.CloseWithError(errors.Join(err, errors.New("sink stopped reading")))
			done <- err
		}()
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err)
		return errors.Join(err, <-done)
	})
	return entries, err
}

func paths(entries []Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Path
	}
	return out
}
