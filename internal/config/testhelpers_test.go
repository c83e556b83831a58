package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// baseYAML is a valid configuration that uses every provider, source type, copy mode and
// optional section, so that each validation test can break it with one small edit.
const baseYAML = `jurisdictions:
  - name: EU
    regions: [eu-west-1, eu-central-1]
  - name: US
    regions: [us-east-1]
  - name: APAC
    regions: [ap-southeast-1]
keys:
  - name: eu-kek
    jurisdiction: EU
    provider: local
    path: keys/eu.keyring
  - name: us-kek
    jurisdiction: US
    provider: awskms
    key_id: arn:aws:kms:us-east-1:111122223333:key/1234abcd
    region: us-east-1
    endpoint: http://127.0.0.1:4566
locations:
  - name: eu-primary
    provider: local
    path: stores/eu-primary
    region: eu-west-1
    object_lock: true
  - name: eu-secondary
    provider: s3
    bucket: drflow-eu
    prefix: dr
    endpoint: http://127.0.0.1:9000
    path_style: true
    region: eu-central-1
  - name: eu-uploads
    provider: gcs
    bucket: uploads
    region: eu-west-1
  - name: us-dr
    provider: azblob
    container: drflow
    account_url: https://drflowus.blob.core.windows.net
    region: us-east-1
  - name: us-archive
    provider: azblob
    container: archive
    connection_string_env: AZURE_STORAGE_CONNECTION_STRING
    region: us-east-1
  - name: apac-catalog
    provider: gcs
    bucket: drflow-apac
    region: ap-southeast-1
policies:
  - name: eu-personal
    home: EU
    rules:
      - jurisdiction: US
        copy: encrypted
        mechanism: scc
      - jurisdiction: APAC
        copy: metadata
  - name: us-internal
    home: US
tiers:
  - name: tier1
    level: 1
    rpo: 15m
    rto: 1h
    backup_every: 5m
    replication: sync
    drill_every: 7d
    retention: {keep_last: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}
  - name: tier3
    level: 3
    rpo: 1d
    rto: 3d
datasets:
  - name: customers
    classification: personal
    policy: eu-personal
    tier: tier1
    primary: eu-primary
    replicas: [eu-secondary, us-dr, apac-catalog]
    source:
      type: directory
      path: data/customers
  - name: orders-db
    classification: personal
    policy: eu-personal
    tier: tier3
    primary: eu-secondary
    replicas: [eu-primary]
    source:
      type: postgres
      dsn: "host=127.0.0.1 dbname=orders"
  - name: uploads
    classification: personal
    policy: eu-personal
    tier: tier3
    primary: eu-primary
    source:
      type: objects
      location: eu-uploads
      prefix: media/
  - name: us-logs
    classification: internal
    policy: us-internal
    tier: tier3
    primary: us-archive
    replicas: [us-dr]
    source:
      type: directory
      path: data/us-logs
`

// edit replaces old, which must occur exactly once in the document, with new.
type edit struct{ old, new string }

// mutate applies edits to baseYAML; an edit that does not match exactly once fails the test,
// so a case can never silently test the unmodified base.
func mutate(t *testing.T, edits ...edit) []byte {
	t.Helper()
	doc := baseYAML
	for _, e := range edits {
		require.Equalf(t, 1, strings.Count(doc, e.old), "edit %q must match exactly once", e.old)
		doc = strings.Replace(doc, e.old, e.new, 1)
	}
	return []byte(doc)
}

// fieldErrors flattens a joined error into its FieldErrors; any other leaf fails the test.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			t.Fatalf("error %q is not a *FieldError", err)
		}
	}
	walk(err)
	return out
}

// findPath returns the error at path, or nil.
func findPath(errs []*FieldError, path string) *FieldError {
	for _, fe := range errs {
		if fe.Path == path {
			return fe
		}
	}
	return nil
}
