// Package sdkcheck runs the Go SDK (module github.com/tollgate/tollgate/sdk)
// against real Tollgate nodes: its revocation follower, its middleware in a
// process of its own, and their latency. It holds tests only.
package sdkcheck
