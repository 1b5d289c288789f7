package api

import (
	"maps"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
)

// serverMetadata is RFC 8414 authorization server metadata. It lists what
// works and nothing else: the grants, the authorization endpoint with
// response type code and PKCE S256, the client authentication methods and
// algorithms of each endpoint, introspection and revocation, and the RFC
// 9207 iss parameter of authorization responses.
type serverMetadata struct {
	Issuer                               string   `json:"issuer"`
	AuthorizationEndpoint                string   `json:"authorization_endpoint"`
	TokenEndpoint                        string   `json:"token_endpoint"`
	JWKSURI                              string   `json:"jwks_uri"`
	IntrospectionEndpoint                string   `json:"introspection_endpoint"`
	RevocationEndpoint                   string   `json:"revocation_endpoint"`
	ScopesSupported                      []string `json:"scopes_supported"`
	ResponseTypesSupported               []string `json:"response_types_supported"`
	GrantTypesSupported                  []string `json:"grant_types_supported"`
	TokenEndpointAuthMethods             []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs         []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	IntrospectionEndpointAuthMethods     []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSigningAlgs []string `json:"introspection_endpoint_auth_signing_alg_values_supported,omitempty"`
	RevocationEndpointAuthMethods        []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthSigningAlgs    []string `json:"revocation_endpoint_auth_signing_alg_values_supported,omitempty"`
	CodeChallengeMethodsSupported        []string `json:"code_challenge_methods_supported"`
	// AuthorizationResponseISSParameterSupported: every authorization
	// response, code or error, carries iss (RFC 9207).
	AuthorizationResponseISSParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

// discovery is GET /.well-known/oauth-authorization-server.
func (a *API) discovery(c *fiber.Ctx) error {
	scopes, err := a.catalogScopeNames()
	if err != nil {
		return err
	}
	if scopes == nil {
		scopes = []string{}
	}
	iss := a.issuer()
	methods := credentialMethods(a.clientAuth)
	// Public clients (none) use the token endpoint with PKCE and may revoke
	// their own tokens; introspection needs credentials.
	withPublic := append(slices.Clone(methods), domain.AuthNone)
	var algs []string
	if a.Assertions != nil {
		for _, alg := range assertionAlgorithms {
			algs = append(algs, string(alg))
		}
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=60")
	return c.JSON(serverMetadata{
		Issuer: iss, AuthorizationEndpoint: iss + "/oauth2/authorize", TokenEndpoint: iss + "/oauth2/token", JWKSURI: iss + "/.well-known/jwks.json",
		IntrospectionEndpoint: iss + "/oauth2/introspect", RevocationEndpoint: iss + "/oauth2/revoke",
		ScopesSupported: scopes, ResponseTypesSupported: []string{"code"},
		GrantTypesSupported:      slices.Sorted(maps.Keys(a.grants)),
		TokenEndpointAuthMethods: withPublic, TokenEndpointAuthSigningAlgs: algs,
		IntrospectionEndpointAuthMethods: methods, IntrospectionEndpointAuthSigningAlgs: algs,
		RevocationEndpointAuthMethods: withPublic, RevocationEndpointAuthSigningAlgs: algs,
		CodeChallengeMethodsSupported:              []string{domain.PKCEMethodS256},
		AuthorizationResponseISSParameterSupported: true,
	})
}
