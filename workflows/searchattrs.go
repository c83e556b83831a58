package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Custom search attributes set by every drflow workflow, so that SREs can filter runs and read
// their measured RPO/RTO in the Web UI (for example DrKind = "drill" AND DrObjectivesMet =
// false). They must exist in the namespace before a workflow sets them; see
// SearchAttributeDefinitions.
var (
	// SearchAttrDataset is the dataset a run protects.
	SearchAttrDataset = temporal.NewSearchAttributeKeyKeyword("DrDataset")
	// SearchAttrTier is the level of the dataset's tier: 1 (most critical) to 3.
	SearchAttrTier = temporal.NewSearchAttributeKeyInt64("DrTier")
	// SearchAttrKind is what the run does: one of the Kind* values.
	SearchAttrKind = temporal.NewSearchAttributeKeyKeyword("DrKind")
	// SearchAttrRPOSeconds is the measured RPO, in seconds. Unset while unknown (a backup
	// with no previous restore point, a drill that has not picked its point yet).
	SearchAttrRPOSeconds = temporal.NewSearchAttributeKeyFloat64("DrRpoSeconds")
	// SearchAttrRTOSeconds is the measured RTO of a drill, in seconds.
	SearchAttrRTOSeconds = temporal.NewSearchAttributeKeyFloat64("DrRtoSeconds")
	// SearchAttrObjectivesMet says whether the run met every objective it measured.
	SearchAttrObjectivesMet = temporal.NewSearchAttributeKeyBool("DrObjectivesMet")
	// SearchAttrRunbook is the name of the runbook a runbook run interprets.
	SearchAttrRunbook = temporal.NewSearchAttributeKeyKeyword("DrRunbook")
)

// Values of SearchAttrKind.
const (
	KindBackup    = "backup"
	KindReplicate = "replicate"
	KindDrill     = "drill"
	KindRetention = "retention"
	KindRunbook   = "runbook"
)

// searchAttributeKeys lists every custom search attribute drflow uses.
func searchAttributeKeys() []temporal.SearchAttributeKey {
	return []temporal.SearchAttributeKey{
		SearchAttrDataset,
		SearchAttrTier,
		SearchAttrKind,
		SearchAttrRPOSeconds,
		SearchAttrRTOSeconds,
		SearchAttrObjectivesMet,
		SearchAttrRunbook,
	}
}

// SearchAttributeDefinitions returns every custom search attribute drflow uses, name to
// Temporal type name (Keyword, Int, Double, Bool), as accepted by
//
//	temporal operator search-attribute create --name DrDataset --type Keyword
//
// and by the dev server's --search-attribute DrDataset=Keyword.
func SearchAttributeDefinitions() map[string]string {
	keys := searchAttributeKeys()
	defs := make(map[string]string, len(keys))
	for _, k := range keys {
		defs[k.GetName()] = temporalTypeName(k.GetValueType())
	}
	return defs
}

// temporalTypeName is the name the Temporal CLI uses for an indexed value type.
func temporalTypeName(t enumspb.IndexedValueType) string {
	switch t {
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD:
		return "Keyword"
	case enumspb.INDEXED_VALUE_TYPE_TEXT:
		return "Text"
	case enumspb.INDEXED_VALUE_TYPE_INT:
		return "Int"
	case enumspb.INDEXED_VALUE_TYPE_DOUBLE:
		return "Double"
	case enumspb.INDEXED_VALUE_TYPE_BOOL:
		return "Bool"
	case enumspb.INDEXED_VALUE_TYPE_DATETIME:
		return "Datetime"
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST:
		return "KeywordList"
	default:
		// Only reachable if a key of a new type is added without a case here; the tests
		// catch that, so a worker never fails at startup over it.
		return t.String()
	}
}
