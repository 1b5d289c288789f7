package workers

import (
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tollgate/tollgate/events"
)

// The fan-out consumer's filter must let through exactly what the fan-out
// handles.
func TestFanOutFilterMatchesFanOutTypes(t *testing.T) {
	filters := subscribableSubjects()
	types := append(slices.Clone(events.SubscribableTypes()), events.TypeDeliveryRetryRequested,
		events.TypeAccessIssued, events.TypeTokenUpdated, events.TypeAccountCreated)
	for _, typ := range types {
		subject := events.Subject(events.Event{AggregateType: "token", AggregateID: "tok_a:b", Type: typ})
		_, handled := fanOutType(subject)
		matched := slices.ContainsFunc(filters, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
		if handled != matched {
			t.Errorf("%s: fan-out handles it %v, consumer filter lets it through %v", subject, handled, matched)
		}
	}
}
