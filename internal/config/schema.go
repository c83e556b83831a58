package config

// The types in this file are the YAML schema: exactly what a user writes, as strings where
// the value still has to be parsed (durations, modes) so that a bad value becomes a
// FieldError with a path instead of aborting the decode. Validation turns them into the
// exported types in config.go.

type fileConfig struct {
	Jurisdictions []fileJurisdiction `yaml:"jurisdictions"`
	Keys          []fileKEK          `yaml:"keys"`
	Locations     []fileLocation     `yaml:"locations"`
	Policies      []filePolicy       `yaml:"policies"`
	Tiers         []fileTier         `yaml:"tiers"`
	Datasets      []fileDataset      `yaml:"datasets"`
	Approvers     []fileApprovers    `yaml:"approvers"`
	Codec         *fileCodec         `yaml:"codec"`
	// SearchAttributes is "names" (the default) or "hashed".
	SearchAttributes string `yaml:"search_attributes"`
}

// fileCodec names the payload keyring that encrypts what drflow sends to Temporal.
type fileCodec struct {
	KeyFile string `yaml:"key_file"`
}

type fileApprovers struct {
	Group   string   `yaml:"group"`
	Members []string `yaml:"members"`
}

type fileJurisdiction struct {
	Name    string   `yaml:"name"`
	Regions []string `yaml:"regions"`
}

type fileKEK struct {
	Name         string `yaml:"name"`
	Jurisdiction string `yaml:"jurisdiction"`
	Provider     string `yaml:"provider"`
	Path         string `yaml:"path"`     // local
	KeyID        string `yaml:"key_id"`   // awskms
	Region       string `yaml:"region"`   // awskms
	Endpoint     string `yaml:"endpoint"` // awskms, optional
}

type fileLocation struct {
	Name       string `yaml:"name"`
	Provider   string `yaml:"provider"`
	Region     string `yaml:"region"`
	ObjectLock bool   `yaml:"object_lock"`
	Prefix     string `yaml:"prefix"`

	Bucket    string `yaml:"bucket"`     // s3, gcs
	Endpoint  string `yaml:"endpoint"`   // s3, gcs, optional
	PathStyle *bool  `yaml:"path_style"` // s3; a pointer so that "path_style: false" on gcs is still reported

	Container           string `yaml:"container"`             // azblob
	AccountURL          string `yaml:"account_url"`           // azblob
	ConnectionStringEnv string `yaml:"connection_string_env"` // azblob

	Path string `yaml:"path"` // local
}

type filePolicy struct {
	Name  string     `yaml:"name"`
	Home  string     `yaml:"home"`
	Rules []fileRule `yaml:"rules"`
}

type fileRule struct {
	Jurisdiction string `yaml:"jurisdiction"`
	Copy         string `yaml:"copy"`
	Mechanism    string `yaml:"mechanism"`
}

type fileTier struct {
	Name        string         `yaml:"name"`
	Level       *int           `yaml:"level"` // a pointer so that an explicit 0 is out of range, not missing
	RPO         string         `yaml:"rpo"`
	RTO         string         `yaml:"rto"`
	BackupEvery string         `yaml:"backup_every"`
	Replication string         `yaml:"replication"`
	DrillEvery  string         `yaml:"drill_every"`
	Retention   *fileRetention `yaml:"retention"`
}

type fileRetention struct {
	KeepLast    *int `yaml:"keep_last"` // a pointer so that an explicit 0 is rejected, not defaulted
	KeepDaily   int  `yaml:"keep_daily"`
	KeepWeekly  int  `yaml:"keep_weekly"`
	KeepMonthly int  `yaml:"keep_monthly"`
}

type fileDataset struct {
	Name           string     `yaml:"name"`
	Classification string     `yaml:"classification"`
	Policy         string     `yaml:"policy"`
	Tier           string     `yaml:"tier"`
	Primary        string     `yaml:"primary"`
	Replicas       []string   `yaml:"replicas"`
	Source         fileSource `yaml:"source"`
}

type fileSource struct {
	Type     string `yaml:"type"`
	Path     string `yaml:"path"`     // directory
	DSN      string `yaml:"dsn"`      // postgres
	DSNEnv   string `yaml:"dsn_env"`  // postgres, instead of dsn when it holds a password
	Location string `yaml:"location"` // objects
	Prefix   string `yaml:"prefix"`   // objects
}
