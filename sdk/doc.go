// Package tollgate is the Go SDK for services downstream of Tollgate:
//
//   - [Guard] checks API tokens through Tollgate's POST /verify, with a short
//     cache that a revocation clears at once, and protects net/http handlers
//     ([Guard.Handler]); package fibermw does the same for Fiber;
//   - [RevocationFollower] keeps a local set of revoked tokens from the
//     documented event subject ([RevocationSubjects]) and resumes where it
//     stopped after a restart;
//   - [WebhookVerifier] checks Standard Webhooks signatures of Tollgate's
//     webhooks;
//   - typed structs of the events and webhook payloads ([Envelope],
//     [TokenRevoked], [WebhookPayload], …).
//
// The SDK depends on nats.go and Fiber only: no NATS server, no storage.
package tollgate
