package domain

import (
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/events"
)

// checkClientSpec validates spec and returns it normalized: defaults filled
// in, grant types and scopes sorted, no nil lists.
func checkClientSpec(v *validation, spec ClientSpec) events.ClientSettings {
	s := events.ClientSettings{
		Name: strings.TrimSpace(spec.Name), TokenEndpointAuthMethod: spec.TokenEndpointAuthMethod,
		AccessTokenTTL: spec.AccessTokenTTL, AccessTokenFormat: spec.AccessTokenFormat,
		RefreshTokenGracePeriod: spec.RefreshTokenGracePeriod,
	}
	checkName(v, "name", s.Name)

	if s.TokenEndpointAuthMethod == "" {
		s.TokenEndpointAuthMethod = AuthClientSecretBasic
	}
	public := s.TokenEndpointAuthMethod == AuthNone
	if !slices.Contains(authMethods, s.TokenEndpointAuthMethod) {
		v.add("token_endpoint_auth_method", "must be one of %s", strings.Join(authMethods, ", "))
	}

	s.GrantTypes = checkGrantTypes(v, spec.GrantTypes, public)
	s.Scopes, s.DefaultScopes = checkClientScopes(v, spec.Scopes, spec.DefaultScopes)

	if jwks := spec.JWKS; len(jwks) > 0 && string(jwks) != "null" {
		s.JWKS = checkJWKS(v, jwks)
	} else if s.TokenEndpointAuthMethod == AuthPrivateKeyJWT {
		v.add("jwks", "is required for private_key_jwt: the public keys the client signs its assertions with")
	}

	s.RedirectURIs = checkRedirectURIs(v, spec.RedirectURIs)
	if slices.Contains(s.GrantTypes, GrantAuthorizationCode) && len(s.RedirectURIs) == 0 {
		v.add("redirect_uris", "at least one is required for authorization_code")
	}

	switch ttl := s.AccessTokenTTL; {
	case ttl == 0:
		s.AccessTokenTTL = DefaultAccessTokenTTL
	case ttl < MinAccessTokenTTL || ttl > MaxAccessTokenTTL:
		v.add("access_token_ttl", "must be from %d to %d seconds", MinAccessTokenTTL, MaxAccessTokenTTL)
	}
	if s.AccessTokenFormat == "" {
		s.AccessTokenFormat = AccessTokenOpaque
	}
	if !slices.Contains(tokenFormats, s.AccessTokenFormat) {
		v.add("access_token_format", "must be %q or %q", AccessTokenOpaque, AccessTokenJWT)
	}
	if g := s.RefreshTokenGracePeriod; g < 0 || g > MaxRefreshTokenGracePeriod {
		v.add("refresh_token_grace_period", "must be from 0 to %d seconds", MaxRefreshTokenGracePeriod)
	}
	return s
}

func checkGrantTypes(v *validation, in []string, public bool) []string {
	if len(in) == 0 {
		// Machine-to-machine is the common confidential client; a public
		// client can only use the authorization code flow.
		if public {
			return []string{GrantAuthorizationCode}
		}
		return []string{GrantClientCredentials}
	}
	for _, g := range in {
		if !slices.Contains(grantTypes, g) {
			v.add("grant_types", "%q is not one of %s", g, strings.Join(grantTypes, ", "))
		}
	}
	out := normalizeScopes(in) // sorted, without repeats
	if public && slices.Contains(out, GrantClientCredentials) {
		v.add("grant_types", "a public client (token_endpoint_auth_method none) cannot use client_credentials")
	}
	if slices.Contains(out, GrantRefreshToken) && !slices.Contains(out, GrantAuthorizationCode) {
		v.add("grant_types", "refresh_token needs authorization_code: refresh tokens are issued with authorization codes only")
	}
	return out
}

func checkClientScopes(v *validation, scopes, defaults []string) ([]string, []string) {
	checkScopes(v, scopes)
	if len(scopes) > MaxClientScopes {
		v.add("scopes", "at most %d scopes", MaxClientScopes)
	}
	scopes = normalizeScopes(scopes)
	defaults = normalizeScopes(defaults)
	for _, d := range defaults {
		if !slices.Contains(scopes, d) {
			v.add("default_scopes", "%q is not among the client's scopes", d)
		}
	}
	if defaults == nil {
		defaults = []string{}
	}
	return scopes, defaults
}

func checkRedirectURIs(v *validation, in []string) []string {
	if len(in) > MaxRedirectURIs {
		v.add("redirect_uris", "at most %d URIs", MaxRedirectURIs)
		return in
	}
	out := make([]string, 0, len(in))
	for i, raw := range in {
		field := "redirect_uris[" + strconv.Itoa(i) + "]"
		if problem := redirectURIProblem(raw); problem != "" {
			v.add(field, "%s", problem)
		} else if slices.Contains(out, raw) {
			v.add(field, "is listed twice")
		}
		out = append(out, raw)
	}
	return out
}

// redirectURIProblem says what is wrong with a redirect URI, "" if nothing.
// Redirect URIs are compared exactly, so they are stored as given.
func redirectURIProblem(raw string) string {
	if len(raw) > MaxRedirectURILength {
		return "must be at most " + strconv.Itoa(MaxRedirectURILength) + " characters"
	}
	if strings.IndexFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return "must not contain spaces or control characters"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return "must be an absolute URL"
	case strings.Contains(raw, "#"):
		return "must not contain a fragment (RFC 6749 §3.1.2)"
	case u.User != nil:
		return "must not contain user information"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http":
		if loopbackHost(u.Hostname()) {
			return ""
		}
		return "must use https (http is allowed only for loopback hosts: localhost, 127.0.0.1, [::1])"
	}
	return "must use https"
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func sameClientSettings(a, b events.ClientSettings) bool {
	return a.Name == b.Name && a.TokenEndpointAuthMethod == b.TokenEndpointAuthMethod &&
		a.AccessTokenTTL == b.AccessTokenTTL && a.AccessTokenFormat == b.AccessTokenFormat &&
		a.RefreshTokenGracePeriod == b.RefreshTokenGracePeriod &&
		slices.Equal(a.GrantTypes, b.GrantTypes) && slices.Equal(a.Scopes, b.Scopes) &&
		slices.Equal(a.DefaultScopes, b.DefaultScopes) && slices.Equal(a.RedirectURIs, b.RedirectURIs) &&
		string(a.JWKS) == string(b.JWKS)
}
