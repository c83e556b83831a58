package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func repl(old, new string) edit { return edit{old, new} }

// after inserts extra right after anchor.
func after(anchor, extra string) edit { return edit{anchor, anchor + extra} }

// TestValidationRules breaks the valid base configuration in one place per case and checks
// that the problem is reported at the exact field path with a useful message.
func TestValidationRules(t *testing.T) {
	tests := []struct {
		name     string
		give     []edit
		wantPath string
		wantMsg  string
	}{
		// Decoding: strict fields and types.
		{"unknown field", []edit{repl("    backup_every: 5m", "    backup_evry: 5m")},
			"tiers[0] (tier1).backup_evry", `unknown field "backup_evry" (did you mean "backup_every"?)`},
		{"unknown top-level field", []edit{repl("tiers:\n", "tier:\n")},
			"tier", `unknown field "tier" (did you mean "tiers"?)`},
		{"unknown field without a close match", []edit{after("    object_lock: true\n", "    worm: true\n")},
			"locations[0] (eu-primary).worm", "(valid here: account_url, bucket,"},
		{"field given twice", []edit{after("    rpo: 15m\n", "    rpo: 20m\n")},
			"tiers[0] (tier1).rpo", "field is given twice (first on line"},
		{"int field not a number", []edit{repl("    level: 1", "    level: one")},
			"tiers[0] (tier1).level", `want a whole number, got "one"`},
		{"bool field not a bool", []edit{repl("    object_lock: true", "    object_lock: maybe")},
			"locations[0] (eu-primary).object_lock", "want true or false"},
		{"list field given a scalar", []edit{repl("    replicas: [us-dr]", "    replicas: us-dr")},
			"datasets[3] (us-logs).replicas", `want a list, got "us-dr"`},
		{"mapping field given a scalar", []edit{repl("      type: postgres\n      dsn: \"host=127.0.0.1 dbname=orders\"", "      postgres")},
			"datasets[1] (orders-db).source", "want a mapping of fields"},
		{"scalar field given a list", []edit{repl("    home: US", "    home: [US]")},
			"policies[1] (us-internal).home", "want a single value, got a list"},

		// Names, in every section.
		{"jurisdiction name missing", []edit{repl("  - name: APAC\n", "  - name: \"\"\n")},
			"jurisdictions[2].name", "is required"},
		{"jurisdiction name charset", []edit{repl("  - name: APAC\n", "  - name: A PAC\n")},
			"jurisdictions[2].name", "may contain only letters, digits"},
		{"jurisdiction duplicate ignoring case", []edit{repl("  - name: APAC\n", "  - name: eu\n")},
			"jurisdictions[2] (eu).name", `"eu" is already defined as "EU"`},
		{"key name missing", []edit{repl("  - name: eu-kek\n", "  - jurisdiction_note: x\n")},
			"keys[0].name", "is required"},
		{"key name duplicate", []edit{repl("  - name: eu-kek\n", "  - name: us-kek\n")},
			"keys[1] (us-kek).name", `another key is already called "us-kek"`},
		{"location name charset", []edit{repl("  - name: eu-uploads\n", "  - name: EU_Uploads\n")},
			"locations[2] (EU_Uploads).name", "may contain only lower-case letters"},
		{"location name duplicate", []edit{repl("  - name: eu-uploads\n", "  - name: eu-primary\n")},
			"locations[2] (eu-primary).name", `another location is already called "eu-primary"`},
		{"location name too long", []edit{repl("  - name: eu-uploads\n", "  - name: a234567890123456789012345678901234567890123456789012345678901234\n")},
			"locations[2].name", "is longer than 63 characters"},
		{"policy name missing", []edit{repl("  - name: us-internal\n    home: US", "  - home: US")},
			"policies[1].name", "is required"},
		{"policy name duplicate", []edit{repl("  - name: us-internal\n", "  - name: eu-personal\n")},
			"policies[1] (eu-personal).name", `another policy is already called "eu-personal"`},
		{"tier name missing", []edit{repl("  - name: tier3\n", "  - name: \n")},
			"tiers[1].name", "is required"},
		{"tier name duplicate", []edit{repl("  - name: tier3\n", "  - name: tier1\n")},
			"tiers[1] (tier1).name", `another tier is already called "tier1"`},
		{"dataset name charset", []edit{repl("  - name: uploads\n", "  - name: up loads\n")},
			"datasets[2].name", `"up loads" may contain only`},
		{"dataset name duplicate", []edit{repl("  - name: uploads\n", "  - name: customers\n")},
			"datasets[2] (customers).name", `another dataset is already called "customers"`},
		{"dataset name starts with punctuation", []edit{repl("  - name: uploads\n", "  - name: -uploads\n")},
			"datasets[2] (-uploads).name", "must start with a letter or digit"},

		// Jurisdictions and regions.
		{"jurisdiction without regions", []edit{repl("    regions: [ap-southeast-1]", "    regions: []")},
			"jurisdictions[2] (APAC).regions", "list at least one region"},
		{"region in two jurisdictions", []edit{repl("    regions: [us-east-1]", "    regions: [us-east-1, eu-west-1]")},
			"jurisdictions[1] (US).regions[1]", `region "eu-west-1" is already in jurisdiction EU`},
		{"region listed twice", []edit{repl("    regions: [us-east-1]", "    regions: [us-east-1, us-east-1]")},
			"jurisdictions[1] (US).regions[1]", "is listed twice"},
		{"region charset", []edit{repl("    regions: [us-east-1]", "    regions: [us-east-1, US_West]")},
			"jurisdictions[1] (US).regions[1]", "may contain only lower-case letters, digits and '-'"},
		{"no jurisdictions", []edit{repl("  - name: EU\n    regions: [eu-west-1, eu-central-1]\n  - name: US\n    regions: [us-east-1]\n  - name: APAC\n    regions: [ap-southeast-1]\n", "  []\n")},
			"jurisdictions", "define at least one jurisdiction"},

		// Key-encryption keys.
		{"key jurisdiction unknown", []edit{repl("    jurisdiction: EU\n    provider: local", "    jurisdiction: EEA\n    provider: local")},
			"keys[0] (eu-kek).jurisdiction", `unknown jurisdiction "EEA" (known: APAC, EU, US)`},
		{"key jurisdiction missing", []edit{repl("    jurisdiction: EU\n    provider: local", "    provider: local")},
			"keys[0] (eu-kek).jurisdiction", "is required"},
		{"two keys for one jurisdiction", []edit{after("    path: keys/eu.keyring\n", "  - name: eu-kek-2\n    jurisdiction: EU\n    provider: local\n    path: keys/eu2.keyring\n")},
			"keys[1] (eu-kek-2).jurisdiction", `EU already has key-encryption key "eu-kek"`},
		{"key provider unknown", []edit{repl("    jurisdiction: EU\n    provider: local", "    jurisdiction: EU\n    provider: vault")},
			"keys[0] (eu-kek).provider", `unknown key provider "vault" (want local or awskms)`},
		{"key provider missing", []edit{repl("    jurisdiction: EU\n    provider: local", "    jurisdiction: EU")},
			"keys[0] (eu-kek).provider", "is required (local or awskms)"},
		{"local key without path", []edit{repl("    path: keys/eu.keyring\n", "")},
			"keys[0] (eu-kek).path", "is required"},
		{"local key with awskms field", []edit{after("    path: keys/eu.keyring\n", "    key_id: abc\n")},
			"keys[0] (eu-kek).key_id", "does not apply to provider local (it uses: path)"},
		{"awskms key with path", []edit{after("    provider: awskms\n", "    path: x.keyring\n")},
			"keys[1] (us-kek).path", "does not apply to provider awskms"},
		{"awskms key without key_id", []edit{repl("    key_id: arn:aws:kms:us-east-1:111122223333:key/1234abcd\n", "")},
			"keys[1] (us-kek).key_id", "is required"},
		{"awskms key without region", []edit{repl("    region: us-east-1\n    endpoint: http://127.0.0.1:4566", "    endpoint: http://127.0.0.1:4566")},
			"keys[1] (us-kek).region", "is required"},
		{"awskms key region abroad", []edit{repl("    region: us-east-1\n    endpoint: http://127.0.0.1:4566", "    region: eu-west-1\n    endpoint: http://127.0.0.1:4566")},
			"keys[1] (us-kek).region", "region eu-west-1 is in jurisdiction EU, but this key belongs to US"},
		{"awskms key region in no jurisdiction", []edit{repl("    region: us-east-1\n    endpoint: http://127.0.0.1:4566", "    region: us-west-2\n    endpoint: http://127.0.0.1:4566")},
			"keys[1] (us-kek).region", `region "us-west-2" is in no jurisdiction`},
		{"awskms ARN region differs", []edit{repl("arn:aws:kms:us-east-1:", "arn:aws:kms:us-west-2:")},
			"keys[1] (us-kek).key_id", `ARN is in region "us-west-2", but region is us-east-1`},
		{"awskms ARN of another service", []edit{repl("arn:aws:kms:us-east-1:111122223333:key/1234abcd", "arn:aws:s3:::bucket")},
			"keys[1] (us-kek).key_id", "is not a KMS key ARN"},
		{"awskms endpoint scheme", []edit{repl("    endpoint: http://127.0.0.1:4566", "    endpoint: tcp://127.0.0.1:4566")},
			"keys[1] (us-kek).endpoint", "must start with http:// or https://"},

		// Locations.
		{"location provider unknown", []edit{repl("    provider: s3", "    provider: ftp")},
			"locations[1] (eu-secondary).provider", `unknown provider "ftp" (want one of s3, gcs, azblob, local)`},
		{"location provider missing", []edit{repl("  - name: eu-uploads\n    provider: gcs\n", "  - name: eu-uploads\n")},
			"locations[2] (eu-uploads).provider", "is required"},
		{"location region missing", []edit{repl("    region: ap-southeast-1", "")},
			"locations[5] (apac-catalog).region", "is required"},
		{"location region in no jurisdiction", []edit{repl("    region: ap-southeast-1", "    region: ap-south-1")},
			"locations[5] (apac-catalog).region", `region "ap-south-1" is in no jurisdiction; add it to one under jurisdictions`},
		{"s3 without bucket", []edit{repl("    bucket: drflow-eu\n", "")},
			"locations[1] (eu-secondary).bucket", "is required"},
		{"gcs without bucket", []edit{repl("    bucket: uploads\n", "")},
			"locations[2] (eu-uploads).bucket", "is required"},
		{"azblob without container", []edit{repl("    container: drflow\n", "")},
			"locations[3] (us-dr).container", "is required"},
		{"azblob without account", []edit{repl("    account_url: https://drflowus.blob.core.windows.net\n", "")},
			"locations[3] (us-dr).account_url", "is required unless connection_string_env is set"},
		{"azblob with both account forms", []edit{after("    account_url: https://drflowus.blob.core.windows.net\n", "    connection_string_env: AZ_CONN\n")},
			"locations[3] (us-dr).connection_string_env", "set either account_url or connection_string_env, not both"},
		{"azblob connection string inline", []edit{repl("    connection_string_env: AZURE_STORAGE_CONNECTION_STRING", "    connection_string_env: DefaultEndpointsProtocol=https;AccountName=x;AccountKey=c2VjcmV0")},
			"locations[4] (us-archive).connection_string_env", "not the connection string itself"},
		{"azblob connection_string_env bad name", []edit{repl("    connection_string_env: AZURE_STORAGE_CONNECTION_STRING", "    connection_string_env: 1AZURE")},
			"locations[4] (us-archive).connection_string_env", "is not a valid environment variable name"},
		{"azblob account_url without scheme", []edit{repl("    account_url: https://drflowus.blob.core.windows.net", "    account_url: drflowus.blob.core.windows.net")},
			"locations[3] (us-dr).account_url", "must start with http:// or https://"},
		{"local without path", []edit{repl("    path: stores/eu-primary\n", "")},
			"locations[0] (eu-primary).path", "is required"},
		{"path on s3", []edit{after("    provider: s3\n", "    path: /srv/dr\n")},
			"locations[1] (eu-secondary).path", "does not apply to provider s3 (it uses: bucket, endpoint, path_style)"},
		{"path_style on gcs", []edit{after("    bucket: uploads\n", "    path_style: false\n")},
			"locations[2] (eu-uploads).path_style", "does not apply to provider gcs"},
		{"bucket on local", []edit{after("    path: stores/eu-primary\n", "    bucket: b\n")},
			"locations[0] (eu-primary).bucket", "does not apply to provider local (it uses: path)"},
		{"container on s3", []edit{after("    provider: s3\n", "    container: c\n")},
			"locations[1] (eu-secondary).container", "does not apply to provider s3"},
		{"endpoint without scheme", []edit{repl("    endpoint: http://127.0.0.1:9000", "    endpoint: minio:9000")},
			"locations[1] (eu-secondary).endpoint", "must start with http:// or https://"},
		{"endpoint without host", []edit{repl("    endpoint: http://127.0.0.1:9000", "    endpoint: http://:9000")},
			"locations[1] (eu-secondary).endpoint", "has no host"},
		{"endpoint with credentials", []edit{repl("    endpoint: http://127.0.0.1:9000", "    endpoint: http://minio:secret@127.0.0.1:9000")},
			"locations[1] (eu-secondary).endpoint", "must not contain credentials"},
		{"endpoint unparsable", []edit{repl("    endpoint: http://127.0.0.1:9000", "    endpoint: \"http://[::1\"")},
			"locations[1] (eu-secondary).endpoint", "is not a URL"},
		{"bucket with a path", []edit{repl("    bucket: drflow-eu", "    bucket: drflow-eu/dr")},
			"locations[1] (eu-secondary).bucket", "must be a bare bucket name"},
		{"prefix starting with slash", []edit{repl("    prefix: dr\n", "    prefix: /dr\n")},
			"locations[1] (eu-secondary).prefix", "must not start with /"},
		{"prefix with dot-dot", []edit{repl("    prefix: dr\n", "    prefix: dr/../x\n")},
			"locations[1] (eu-secondary).prefix", "is not a valid key prefix"},
		{"locations overlap", []edit{after("    region: eu-central-1\n", "  - name: eu-copy\n    provider: s3\n    bucket: drflow-eu\n    prefix: dr/eu\n    endpoint: http://127.0.0.1:9000\n    region: eu-west-1\n")},
			"locations[2] (eu-copy).bucket", `overlaps location "eu-secondary"`},
		{"local locations share a directory", []edit{after("    object_lock: true\n", "  - name: eu-primary-2\n    provider: local\n    path: stores/./eu-primary\n    region: eu-west-1\n")},
			"locations[1] (eu-primary-2).path", `overlaps location "eu-primary"`},

		// Residency policies.
		{"policy home unknown", []edit{repl("    home: US", "    home: USA")},
			"policies[1] (us-internal).home", `unknown jurisdiction "USA" (known: APAC, EU, US)`},
		{"policy home missing", []edit{repl("    home: US\n", "")},
			"policies[1] (us-internal).home", "is required"},
		{"policy home without key", []edit{repl("    home: US", "    home: APAC")},
			"policies[1] (us-internal).home", "home jurisdiction APAC has no key-encryption key"},
		{"rule jurisdiction unknown", []edit{repl("      - jurisdiction: APAC\n", "      - jurisdiction: ASIA\n")},
			"policies[0] (eu-personal).rules[1].jurisdiction", `unknown jurisdiction "ASIA"`},
		{"rule jurisdiction missing", []edit{repl("      - jurisdiction: APAC\n        copy: metadata", "      - copy: metadata")},
			"policies[0] (eu-personal).rules[1].jurisdiction", "is required"},
		{"duplicate rule", []edit{after("        copy: metadata\n", "      - jurisdiction: US\n        copy: metadata\n")},
			"policies[0] (eu-personal).rules[2].jurisdiction", "US already has a rule (rules[0])"},
		{"copy mode unknown", []edit{repl("        copy: metadata", "        copy: partial")},
			"policies[0] (eu-personal).rules[1].copy", `unknown copy mode "partial" (want full, encrypted or metadata)`},
		{"copy mode missing", []edit{repl("        copy: metadata\n", "")},
			"policies[0] (eu-personal).rules[1].copy", "is required"},
		{"mechanism unknown", []edit{repl("        mechanism: scc", "        mechanism: handshake")},
			"policies[0] (eu-personal).rules[0].mechanism", `unknown transfer mechanism "handshake" (want adequacy, scc, bcr, consent)`},
		{"full copy outside home", []edit{repl("        copy: encrypted", "        copy: full")},
			"policies[0] (eu-personal).rules[0].copy", "would let plaintext, or the key to it, leave home jurisdiction EU; use copy: encrypted with a mechanism"},
		{"encrypted export without mechanism", []edit{repl("        mechanism: scc\n", "")},
			"policies[0] (eu-personal).rules[0].mechanism", "is required for encrypted copies leaving EU for US"},
		{"home rule not full", []edit{repl("    rules:\n", "    rules:\n      - jurisdiction: EU\n        copy: encrypted\n")},
			"policies[0] (eu-personal).rules[0].copy", "always holds full copies"},
		{"home rule with mechanism", []edit{repl("    rules:\n", "    rules:\n      - jurisdiction: EU\n        copy: full\n        mechanism: consent\n")},
			"policies[0] (eu-personal).rules[0].mechanism", "needs no mechanism"},

		// Tiers.
		{"tier level missing", []edit{repl("    level: 3\n", "")},
			"tiers[1] (tier3).level", "is required"},
		{"tier level too high", []edit{repl("    level: 3", "    level: 4")},
			"tiers[1] (tier3).level", "must be 1, 2 or 3, got 4"},
		{"tier level zero", []edit{repl("    level: 3", "    level: 0")},
			"tiers[1] (tier3).level", "must be 1, 2 or 3, got 0"},
		{"tier level negative", []edit{repl("    level: 3", "    level: -1")},
			"tiers[1] (tier3).level", "must be 1, 2 or 3, got -1"},
		{"tier rpo missing", []edit{repl("    rpo: 1d\n", "")},
			"tiers[1] (tier3).rpo", "is required"},
		{"tier rto missing", []edit{repl("    rto: 3d\n", "")},
			"tiers[1] (tier3).rto", "is required"},
		{"tier rpo zero", []edit{repl("    rpo: 1d", "    rpo: 0s")},
			"tiers[1] (tier3).rpo", `must be positive, got "0s"`},
		{"tier rto negative", []edit{repl("    rto: 3d", "    rto: -3d")},
			"tiers[1] (tier3).rto", `must be positive, got "-3d"`},
		{"tier rto not a duration", []edit{repl("    rto: 3d", "    rto: 3 days")},
			"tiers[1] (tier3).rto", `invalid duration "3 days"`},
		{"backup_every zero", []edit{repl("    backup_every: 5m", "    backup_every: 0m")},
			"tiers[0] (tier1).backup_every", "must be positive"},
		{"backup_every longer than rpo", []edit{repl("    backup_every: 5m", "    backup_every: 30m")},
			"tiers[0] (tier1).backup_every", "30m is not shorter than rpo 15m: a backup takes time"},
		{"backup_every equal to rpo", []edit{repl("    backup_every: 5m", "    backup_every: 15m")},
			"tiers[0] (tier1).backup_every", "is not shorter than rpo"},
		{"replication unknown", []edit{repl("    replication: sync", "    replication: eventual")},
			"tiers[0] (tier1).replication", `unknown replication mode "eventual" (want sync or async)`},
		{"drill_every negative", []edit{repl("    drill_every: 7d", "    drill_every: -7d")},
			"tiers[0] (tier1).drill_every", "must be positive"},
		{"retention keep_last zero", []edit{repl("keep_last: 24", "keep_last: 0")},
			"tiers[0] (tier1).retention.keep_last", "must be at least 1, got 0"},
		{"retention keep_daily negative", []edit{repl("keep_daily: 7", "keep_daily: -7")},
			"tiers[0] (tier1).retention.keep_daily", "must not be negative"},

		// Datasets.
		{"dataset policy unknown", []edit{repl("    policy: us-internal", "    policy: us-privat")},
			"datasets[3] (us-logs).policy", `unknown policy "us-privat" (known: eu-personal, us-internal)`},
		{"dataset policy missing", []edit{repl("    policy: us-internal\n", "")},
			"datasets[3] (us-logs).policy", "is required"},
		{"dataset tier unknown", []edit{repl("    tier: tier1", "    tier: tier2")},
			"datasets[0] (customers).tier", `unknown tier "tier2" (known: tier1, tier3)`},
		{"dataset primary unknown", []edit{repl("    primary: eu-primary\n    replicas: [eu-secondary, us-dr, apac-catalog]", "    primary: eu-primry\n    replicas: [eu-secondary, us-dr, apac-catalog]")},
			"datasets[0] (customers).primary", `unknown location "eu-primry" (known: apac-catalog, eu-primary, eu-secondary, eu-uploads, us-archive, us-dr)`},
		{"dataset primary missing", []edit{repl("    primary: us-archive\n", "")},
			"datasets[3] (us-logs).primary", "is required"},
		{"dataset primary outside home", []edit{repl("    primary: us-archive", "    primary: eu-uploads")},
			"datasets[3] (us-logs).primary", "location eu-uploads is in EU, but policy us-internal keeps primaries in its home jurisdiction US"},
		{"dataset replica unknown", []edit{repl("    replicas: [us-dr]", "    replicas: [us-dr, us-backup]")},
			"datasets[3] (us-logs).replicas[1]", `unknown location "us-backup"`},
		{"dataset replica is primary", []edit{repl("    replicas: [us-dr]", "    replicas: [us-archive]")},
			"datasets[3] (us-logs).replicas[0]", "us-archive is the primary"},
		{"dataset replica duplicated", []edit{repl("    replicas: [us-dr]", "    replicas: [us-dr, us-dr]")},
			"datasets[3] (us-logs).replicas[1]", "us-dr is listed twice (also replicas[0])"},
		{"dataset replica denied by policy", []edit{repl("    replicas: [us-dr]", "    replicas: [us-dr, eu-secondary]")},
			"datasets[3] (us-logs).replicas[1]", "location eu-secondary is in EU, where policy us-internal allows no copies (it allows: US full (home))"},
		{"dataset classification missing", []edit{repl("    classification: internal\n", "")},
			"datasets[3] (us-logs).classification", "is required"},
		{"dataset classification charset", []edit{repl("    classification: internal", "    classification: Internal Only")},
			"datasets[3] (us-logs).classification", "may contain only"},
		{"no datasets", []edit{repl(baseYAML[strings.Index(baseYAML, "\ndatasets:\n")+1:], "datasets: []\n")},
			"datasets", "define at least one dataset"},

		// Sources.
		{"source type unknown", []edit{repl("      type: postgres", "      type: mysql")},
			"datasets[1] (orders-db).source.type", `unknown source type "mysql" (want directory, postgres or objects)`},
		{"source type missing", []edit{repl("      type: postgres\n", "")},
			"datasets[1] (orders-db).source.type", "is required"},
		{"directory source without path", []edit{repl("      type: directory\n      path: data/customers", "      type: directory")},
			"datasets[0] (customers).source.path", "is required"},
		{"directory source with dsn", []edit{after("      path: data/customers\n", "      dsn: host=x\n")},
			"datasets[0] (customers).source.dsn", "does not apply to a directory source (it uses: path)"},
		{"postgres source without dsn", []edit{repl("      dsn: \"host=127.0.0.1 dbname=orders\"\n", "")},
			"datasets[1] (orders-db).source.dsn", "is required unless dsn_env is set"},
		{"postgres source with dsn and dsn_env", []edit{after("      dsn: \"host=127.0.0.1 dbname=orders\"\n", "      dsn_env: ORDERS_DSN\n")},
			"datasets[1] (orders-db).source.dsn_env", "set either dsn or dsn_env, not both"},
		{"postgres dsn_env holding the DSN", []edit{repl("      dsn: \"host=127.0.0.1 dbname=orders\"", "      dsn_env: \"host=127.0.0.1 password=x\"")},
			"datasets[1] (orders-db).source.dsn_env", "not the DSN itself"},
		{"postgres source with path", []edit{after("      type: postgres\n", "      path: /var/lib/postgresql\n")},
			"datasets[1] (orders-db).source.path", "does not apply to a postgres source (it uses: dsn, dsn_env)"},
		{"objects source without location", []edit{repl("      location: eu-uploads\n", "")},
			"datasets[2] (uploads).source.location", "is required"},
		{"objects source location unknown", []edit{repl("      location: eu-uploads", "      location: eu-upload")},
			"datasets[2] (uploads).source.location", `unknown location "eu-upload"`},
		{"objects source with path", []edit{after("      type: objects\n", "      path: ./x\n")},
			"datasets[2] (uploads).source.path", "does not apply to an objects source (it uses: location, prefix)"},
		{"objects source prefix absolute", []edit{repl("      prefix: media/", "      prefix: /media/")},
			"datasets[2] (uploads).source.prefix", "must not start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(mutate(t, tt.give...))
			require.Error(t, err)
			assert.Nil(t, cfg)
			errs := fieldErrors(t, err)
			got := findPath(errs, tt.wantPath)
			require.NotNilf(t, got, "no error at %s; got:\n%v", tt.wantPath, err)
			assert.Contains(t, got.Msg, tt.wantMsg)
			assert.Positive(t, got.Line, "every error should point at a line")
		})
	}
}

func TestApproverGroups(t *testing.T) {
	groups := "approvers:\n  - group: legal\n    members: [alice, bob]\n  - group: sre\n    members: [carol]\n"
	cfg, err := Parse([]byte(baseYAML + groups))
	require.NoError(t, err)
	g, ok := cfg.ApproverGroup("legal")
	require.True(t, ok)
	assert.Equal(t, ApproverGroup{Name: "legal", Members: []string{"alice", "bob"}}, g)
	_, ok = cfg.ApproverGroup("nobody")
	assert.False(t, ok)

	tests := []struct {
		name     string
		give     string
		wantPath string
		wantMsg  string
	}{
		{"no members", "approvers:\n  - group: legal\n", "approvers[0] (legal).members", "at least one person"},
		{"member twice", "approvers:\n  - group: legal\n    members: [alice, alice]\n", "approvers[0] (legal).members[1]", `"alice" is listed twice`},
		{"blank member", "approvers:\n  - group: legal\n    members: [\" \"]\n", "approvers[0] (legal).members[0]", "non-empty name"},
		{"group twice", "approvers:\n  - group: legal\n    members: [a]\n  - group: legal\n    members: [b]\n", "approvers[1] (legal).group", "already called"},
		{"bad group name", "approvers:\n  - group: Legal Team\n    members: [a]\n", "approvers[0].group", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(baseYAML + tt.give))
			require.Error(t, err)
			fe := findPath(fieldErrors(t, err), tt.wantPath)
			require.NotNil(t, fe, "no error at %s in: %v", tt.wantPath, err)
			assert.Contains(t, fe.Msg, tt.wantMsg)
			assert.Positive(t, fe.Line, "the error names a line")
		})
	}
}

func TestCodecSection(t *testing.T) {
	t.Setenv(EnvCodecKeyFile, "")
	cfg, err := Parse([]byte(baseYAML))
	require.NoError(t, err)
	assert.Empty(t, cfg.PayloadKeyFile(), "no codec section: payloads in the clear")

	dir := t.TempDir()
	path := filepath.Join(dir, "drflow.yaml")
	require.NoError(t, os.WriteFile(path, []byte(baseYAML+"codec:\n  key_file: keys/payload.keyring\n"), 0o600))
	cfg, err = Load(path)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "keys", "payload.keyring"), cfg.PayloadKeyFile(), "relative to the file")

	t.Setenv(EnvCodecKeyFile, "/run/secrets/drflow-payload.keyring")
	assert.Equal(t, "/run/secrets/drflow-payload.keyring", cfg.PayloadKeyFile(), "the environment wins")

	_, err = Parse([]byte(baseYAML + "codec:\n  key_file: \"\"\n"))
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "codec.key_file", fe.Path)
	assert.Contains(t, fe.Msg, "drflow codec-key create")
	_, err = Parse([]byte(baseYAML + "codec:\n  key: c2VjcmV0\n"))
	assert.ErrorContains(t, err, "key", "a key in the configuration is refused as an unknown field")
}
