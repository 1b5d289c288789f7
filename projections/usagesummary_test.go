package projections

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
)

// A batch's summary reads the same however the batch is laid out, and
// strings that look like the records key do not cut it short.
func TestUsageSummaryOfEveryLayout(t *testing.T) {
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	records := []events.UsageRecord{
		{ID: "r1", Kind: events.UsageKindVerify, Time: at, AccountID: "acc_1", Environment: "live", TokenID: "tok_1",
			Domain: `evil,"records":[{"x":1}]}`, IP: "203.0.113.9", Status: 200, Verdict: "VALID", Cost: 3},
		{ID: "r2", Kind: events.UsageKindVerify, Time: at.Add(time.Minute), AccountID: "acc_1", Environment: "live",
			TokenID: "tok_2", Domain: `,"records":`, Status: 200, Verdict: "EXPIRED"},
	}
	sum := events.Summarize(records)
	want, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	withSummary, err := json.Marshal(events.UsageBatch{Version: events.UsageSchemaVersion1, ID: "b1", Node: "n1", Summary: &sum, Records: records})
	if err != nil {
		t.Fatal(err)
	}
	withoutSummary, err := json.Marshal(events.UsageBatch{Version: events.UsageSchemaVersion1, ID: "b1", Node: "n1", Records: records})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := json.Marshal(records)
	if err != nil {
		t.Fatal(err)
	}
	summaryLast := []byte(`{"version":1,"id":"b1","node":"n1","records":` + string(recs) + `,"summary":` + string(want) + `}`)
	for name, data := range map[string][]byte{
		"summary first": withSummary, "no summary": withoutSummary, "summary last": summaryLast,
	} {
		got, err := usageSummary(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, want) {
			t.Errorf("%s: summary\n%s\nwant\n%s", name, raw, want)
		}
	}
	if _, err := usageSummary([]byte(`{"version":1,"records":[{"kind":`)); err == nil {
		t.Error("a truncated batch was read without error")
	}
}
