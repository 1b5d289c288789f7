// Package workers runs Tollgate's background work: lease housekeeping
// ([Housekeeping]) and webhook (callback) delivery ([Workers]).
//
// Webhooks are delivered by a Watermill router on two durable JetStream
// consumers that Tollgate creates itself. The first, "tollgate-callbacks" on
// the event stream, fans every subscribable event out to the subscriptions
// that want it, recording one delivery each; the second,
// "tollgate-deliveries" on a work stream, makes the HTTP attempts, records
// their outcome, and schedules retries as JetStream message schedules. Every
// message is acknowledged only after what it caused is recorded in the event
// log.
package workers
