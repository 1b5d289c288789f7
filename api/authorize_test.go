package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// The walkthrough of the README: a confidential client sends the user to
// /oauth/authorize, exchanges the code with its secret in the body, calls
// an API that introspects the token, and refreshes; x/oauth2 does the
// client side with PKCE.
func TestAuthorizationCodeFlowWithXOAuth2(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	cfg := f.oauthConfig("domains:read", "domains:write")
	verifier := oauth2.GenerateVerifier()
	state := randomState(t)
	b := newBrowser(t, n.URL())
	code := codeFrom(t, b.authorize(t, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))), state)

	tok, err := exchange(t, cfg, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.AccessToken, "tg_at_") || !strings.HasPrefix(tok.RefreshToken, "tg_rt_") || tok.Extra("scope") != "domains:read domains:write" {
		t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
	}
	in := f.introspect(t, tok.AccessToken)
	if !active(in) || in["sub"] != f.user.ID || in["client_id"] != f.client.ClientID || in["scope"] != "domains:read domains:write" {
		t.Fatalf("introspection %v", in)
	}

	// Refresh through a TokenSource once the token is due.
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := cfg.TokenSource(context.Background(), tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || !strings.HasPrefix(fresh.RefreshToken, "tg_rt_") {
		t.Fatalf("refresh did not rotate: %+v", fresh)
	}
	if in := f.introspect(t, fresh.AccessToken); !active(in) || in["sub"] != f.user.ID {
		t.Fatalf("refreshed token: %v", in)
	}

	// The second authorization finds the consent and redirects at once.
	state2 := randomState(t)
	p := b.get(t, cfg.AuthCodeURL(state2, oauth2.S256ChallengeOption(verifier)))
	if _, err := exchange(t, cfg, codeFrom(t, p.location(t), state2), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
}

// A code works once. The second redemption is invalid_grant and revokes
// what the first one issued, access and refresh token.
func TestAuthorizationCodeReplayRevokesTokens(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	cfg := f.oauthConfig("domains:read")
	verifier := oauth2.GenerateVerifier()
	code := codeFrom(t, newBrowser(t, n.URL()).authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))), "s")
	tok, err := exchange(t, cfg, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, err = exchange(t, cfg, code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("replay: %v", err)
	}
	if active(f.introspect(t, tok.AccessToken)) {
		t.Fatal("the access token of a replayed code is still active")
	}
	r := oauthPost(t, n.URL(), "/oauth/token", form("grant_type", "refresh_token", "refresh_token", tok.RefreshToken,
		"client_id", f.client.ClientID, "client_secret", f.client.ClientSecret))
	wantOAuthError(t, r, http.StatusBadRequest, "invalid_grant")
}
