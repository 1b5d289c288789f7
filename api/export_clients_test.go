package api

import (
	"context"
	"time"
)

// CheckClientSecret reports whether secret authenticates the client holding
// clientID at now, as the token endpoint decides it: the lookup falls back
// to the stream, the check accepts a rotated-away secret during its grace.
func (a *API) CheckClientSecret(ctx context.Context, clientID, secret string, now time.Time) (bool, error) {
	rec, ok, err := a.clientByClientID(ctx, clientID)
	if err != nil || !ok {
		return false, err
	}
	return clientOf(rec).CheckSecret(secret, now), nil
}
