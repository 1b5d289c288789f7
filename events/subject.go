package events

import "strings"

// Subject scheme. One subject per aggregate instance with the event type last:
//
//	tollgate.events.<aggregate type>.<aggregate id>.<event type>
//
// Event types contain dots (token.revoked), so the subject of a revocation of
// token tok_1 is tollgate.events.token.tok_1.token.revoked.
const (
	// SubjectPrefix starts every event subject.
	SubjectPrefix = "tollgate.events"
	// AllSubjects matches every event.
	AllSubjects = SubjectPrefix + ".>"
	// RevocationSubjects is the one wildcard downstream services subscribe to
	// for revocations of any token kind (API tokens and OAuth access tokens).
	RevocationSubjects = SubjectPrefix + ".*.*." + TypeTokenRevoked
)

// Subject is the subject an event is stored under.
func Subject(e Event) string {
	return SubjectPrefix + "." + e.AggregateType + "." + e.AggregateID + "." + e.Type
}

// AggregateSubjects matches every event of one aggregate instance.
func AggregateSubjects(aggregateType, aggregateID string) string {
	return SubjectPrefix + "." + aggregateType + "." + aggregateID + ".>"
}

// validToken reports whether s can stand as one subject token: a non-empty
// run of ASCII letters, digits, '_', '-' and ':' (scope names are ids).
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

// validType reports whether s is a dotted event type such as token.revoked.
func validType(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !validToken(part) {
			return false
		}
	}
	return true
}

// ValidID reports whether id can be used as an aggregate id in a subject.
func ValidID(id string) bool { return validToken(id) }
