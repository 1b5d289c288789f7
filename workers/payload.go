package workers

import (
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/tollgate/tollgate/events"
)

// Payload is the body of every webhook, in the Standard Webhooks shape:
// the event type, when it happened, and the event's data.
type Payload struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// RenderPayload makes the webhook body of an event. The data is the
// event's payload without its hashes (token, refresh-token and secret
// digests): receivers have no use for them and should not hold them. The
// same event always renders to the same bytes, so a manual retry days
// later sends what the first attempt sent.
func RenderPayload(ev events.Event) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(ev.Data, &fields); err != nil {
		return nil, err
	}
	for k := range fields {
		if k == "hash" || strings.HasSuffix(k, "_hash") || strings.HasSuffix(k, "_sealed") {
			delete(fields, k)
		}
	}
	data, err := json.Marshal(fields) // map keys come out sorted
	if err != nil {
		return nil, err
	}
	return json.Marshal(Payload{Type: ev.Type, Timestamp: ev.Time.UTC(), Data: data})
}
