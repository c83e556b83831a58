package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

func TestSearchAttributeDefinitions(t *testing.T) {
	want := map[string]string{
		"DrDataset":       "Keyword",
		"DrTier":          "Int",
		"DrKind":          "Keyword",
		"DrRpoSeconds":    "Double",
		"DrRtoSeconds":    "Double",
		"DrObjectivesMet": "Bool",
		"DrRunbook":       "Keyword",
	}
	assert.Equal(t, want, SearchAttributeDefinitions())
}

func TestSearchAttributeKeys(t *testing.T) {
	tests := []struct {
		give     temporal.SearchAttributeKey
		wantName string
		wantType enumspb.IndexedValueType
	}{
		{SearchAttrDataset, "DrDataset", enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{SearchAttrTier, "DrTier", enumspb.INDEXED_VALUE_TYPE_INT},
		{SearchAttrKind, "DrKind", enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{SearchAttrRPOSeconds, "DrRpoSeconds", enumspb.INDEXED_VALUE_TYPE_DOUBLE},
		{SearchAttrRTOSeconds, "DrRtoSeconds", enumspb.INDEXED_VALUE_TYPE_DOUBLE},
		{SearchAttrObjectivesMet, "DrObjectivesMet", enumspb.INDEXED_VALUE_TYPE_BOOL},
		{SearchAttrRunbook, "DrRunbook", enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			assert.Equal(t, tt.wantName, tt.give.GetName())
			assert.Equal(t, tt.wantType, tt.give.GetValueType())
			assert.Contains(t, searchAttributeKeys(), tt.give, "registered by SearchAttributeDefinitions")
		})
	}
	assert.Len(t, searchAttributeKeys(), len(tests))
}

func TestTemporalTypeNames(t *testing.T) {
	tests := []struct {
		give enumspb.IndexedValueType
		want string
	}{
		{enumspb.INDEXED_VALUE_TYPE_KEYWORD, "Keyword"},
		{enumspb.INDEXED_VALUE_TYPE_TEXT, "Text"},
		{enumspb.INDEXED_VALUE_TYPE_INT, "Int"},
		{enumspb.INDEXED_VALUE_TYPE_DOUBLE, "Double"},
		{enumspb.INDEXED_VALUE_TYPE_BOOL, "Bool"},
		{enumspb.INDEXED_VALUE_TYPE_DATETIME, "Datetime"},
		{enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST, "KeywordList"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, temporalTypeName(tt.give))
		})
	}
}

func TestKinds(t *testing.T) {
	assert.ElementsMatch(t,
		[]string{"backup", "replicate", "drill", "retention"},
		[]string{KindBackup, KindReplicate, KindDrill, KindRetention})
}
