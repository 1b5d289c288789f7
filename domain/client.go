package domain

import (
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate/tollgate/events"
)

// Token endpoint authentication methods of a client (RFC 7591 §2).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
	// AuthNone is a public client: no secret, authorization code with PKCE.
	AuthNone = "none"
)

// Grant types a client may use.
const (
	GrantClientCredentials = "client_credentials"
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
)

// Access token formats: opaque strings, or RFC 9068 JWTs.
const (
	AccessTokenOpaque = "opaque"
	AccessTokenJWT    = "jwt"
)

// Client statuses.
const (
	ClientActive  = "active"
	ClientDeleted = "deleted"
)

// Client limits and defaults.
const (
	// DefaultAccessTokenTTL is the access-token lifetime of a client that
	// states none, in seconds.
	DefaultAccessTokenTTL = 3600
	MinAccessTokenTTL     = 60
	MaxAccessTokenTTL     = 86400
	// MaxClientIDLength bounds a client_id, in characters.
	MaxClientIDLength = 200
	// MaxSecretGracePeriod bounds how long a rotated-away client secret keeps
	// working.
	MaxSecretGracePeriod = 24 * time.Hour
	MaxRedirectURIs      = 20
	MaxRedirectURILength = 2000
	MaxClientScopes      = 100
	// MaxRefreshTokenGracePeriod bounds a client's refresh_token_grace_period, in seconds.
	MaxRefreshTokenGracePeriod = 300
)

// ClientIDPrefix starts the internal id of every client.
const ClientIDPrefix = "cli_"

var (
	authMethods  = []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthNone}
	grantTypes   = []string{GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken}
	tokenFormats = []string{AccessTokenOpaque, AccessTokenJWT}
)

// ErrNoClientSecret: the client authenticates without a secret
// (private_key_jwt or none), so it has no secret to rotate.
var ErrNoClientSecret = errors.New("client does not authenticate with a secret")

// Client is an OAuth 2.0 client of one account and environment.
type Client struct {
	// ID is the internal id (cli_…), the aggregate id.
	ID string
	// ClientID is what the client presents at the token endpoint: generated
	// (then equal to ID) or chosen, unique across the cluster.
	ClientID           string
	AccountID          string
	Environment        string
	Settings           events.ClientSettings
	SecretHash         string
	PreviousSecretHash string
	PreviousValidUntil *time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
	DeletedAt          *time.Time
	// Version is the stream sequence of the client's last event.
	Version uint64
}

// ClientSpec is what an operator states about a client: the settings part
// of [CreateClient] and [UpdateClient]. Zero values take the defaults:
// client_secret_basic, access tokens of 3600 seconds, opaque; grant types
// client_credentials (authorization_code for public clients).
type ClientSpec struct {
	Name                    string
	GrantTypes              []string
	Scopes                  []string
	DefaultScopes           []string
	TokenEndpointAuthMethod string
	// JWKS is the JSON of a JWK Set ({"keys":[…]}); nil or "null" for none.
	JWKS              []byte
	RedirectURIs      []string
	AccessTokenTTL    int64
	AccessTokenFormat string
	// RefreshTokenGracePeriod: seconds a spent refresh token may be
	// presented once more, 0 to [MaxRefreshTokenGracePeriod].
	RefreshTokenGracePeriod int64
}

// CreateClient is the command that registers a client. Secret generation
// happens outside; the command carries the hash of the secret it made, which
// a client authenticating without a secret must not have.
type CreateClient struct {
	ID          string
	ClientID    string // empty: the client_id is ID
	AccountID   string
	Environment string
	Spec        ClientSpec
	SecretHash  string
	// GrantorScopes are the scopes of whoever registers the client; a client
	// is never allowed a scope its grantor lacks.
	GrantorScopes []string
}

// UpdateClient replaces a client's settings. NewSecretHash is used only
// when the change moves a client without a secret to a secret-based
// authentication method.
type UpdateClient struct {
	Spec          ClientSpec
	NewSecretHash string
	GrantorScopes []string
}

// ClientUsesSecret reports whether method (empty: the default) authenticates
// with a client secret.
func ClientUsesSecret(method string) bool {
	return method == "" || method == AuthClientSecretBasic || method == AuthClientSecretPost
}

// ValidClientID reports whether s can be a client_id: 1 to 200 printable
// characters (spaces, ':', '@', '%' and the like included).
func ValidClientID(s string) bool {
	if s == "" || len(s) > 4*MaxClientIDLength || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxClientIDLength {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// NewClient validates the command and returns the client's first event and
// the claim on its client_id, to be appended together.
func NewClient(cmd CreateClient, now time.Time) (events.ClientCreated, events.ClientIDClaimed, error) {
	var v validation
	if !strings.HasPrefix(cmd.ID, ClientIDPrefix) || !events.ValidID(cmd.ID) {
		v.add("id", "is not a valid client id")
	}
	if cmd.ClientID == "" {
		cmd.ClientID = cmd.ID
	} else if !ValidClientID(cmd.ClientID) {
		v.add("client_id", "must be 1 to %d printable characters", MaxClientIDLength)
	}
	if !events.ValidID(cmd.AccountID) {
		v.add("account_id", "is not a valid account id")
	}
	if cmd.Environment != EnvLive && cmd.Environment != EnvTest {
		v.add("environment", "must be %q or %q", EnvLive, EnvTest)
	}
	settings := checkClientSpec(&v, cmd.Spec)
	if err := v.err(); err != nil {
		return events.ClientCreated{}, events.ClientIDClaimed{}, err
	}
	if ClientUsesSecret(settings.TokenEndpointAuthMethod) != (cmd.SecretHash != "") {
		return events.ClientCreated{}, events.ClientIDClaimed{}, errors.New("domain: a client has a secret hash exactly when its authentication method uses a secret")
	}
	if err := checkGrant(cmd.GrantorScopes, settings.Scopes); err != nil {
		return events.ClientCreated{}, events.ClientIDClaimed{}, err
	}
	created := events.ClientCreated{
		ID: cmd.ID, ClientID: cmd.ClientID, AccountID: cmd.AccountID, Environment: cmd.Environment,
		ClientSettings: settings, SecretHash: cmd.SecretHash, CreatedAt: now.UTC(),
	}
	claimed := events.ClientIDClaimed{ClientID: cmd.ClientID, Client: cmd.ID, AccountID: cmd.AccountID, ClaimedAt: now.UTC()}
	return created, claimed, nil
}

// Status is active or deleted.
func (c Client) Status() string {
	if c.DeletedAt != nil {
		return ClientDeleted
	}
	return ClientActive
}

// Spec is the client's current settings as a command, the starting point of
// a partial update.
func (c Client) Spec() ClientSpec {
	s := c.Settings
	return ClientSpec{
		Name: s.Name, GrantTypes: slices.Clone(s.GrantTypes), Scopes: slices.Clone(s.Scopes),
		DefaultScopes: slices.Clone(s.DefaultScopes), TokenEndpointAuthMethod: s.TokenEndpointAuthMethod,
		JWKS: slices.Clone([]byte(s.JWKS)), RedirectURIs: slices.Clone(s.RedirectURIs),
		AccessTokenTTL: s.AccessTokenTTL, AccessTokenFormat: s.AccessTokenFormat,
		RefreshTokenGracePeriod: s.RefreshTokenGracePeriod,
	}
}

// Update validates the new settings and returns client.updated; changed is
// false when the update would change nothing (the caller appends nothing).
// A deleted client is [ErrNotFound].
func (c Client) Update(cmd UpdateClient, now time.Time) (upd events.ClientUpdated, changed bool, err error) {
	if c.DeletedAt != nil || c.ID == "" {
		return events.ClientUpdated{}, false, ErrNotFound
	}
	var v validation
	settings := checkClientSpec(&v, cmd.Spec)
	if err := v.err(); err != nil {
		return events.ClientUpdated{}, false, err
	}
	// Scopes the client already has stay; only new ones need the grantor.
	var added []string
	for _, s := range settings.Scopes {
		if !slices.Contains(c.Settings.Scopes, s) {
			added = append(added, s)
		}
	}
	if err := checkGrant(cmd.GrantorScopes, added); err != nil {
		return events.ClientUpdated{}, false, err
	}
	secret := c.SecretHash
	switch {
	case !ClientUsesSecret(settings.TokenEndpointAuthMethod):
		secret = ""
	case secret == "":
		if cmd.NewSecretHash == "" {
			return events.ClientUpdated{}, false, errors.New("domain: a client switching to a secret-based method needs a new secret hash")
		}
		secret = cmd.NewSecretHash
	}
	upd = events.ClientUpdated{ID: c.ID, AccountID: c.AccountID, ClientSettings: settings, SecretHash: secret, UpdatedAt: now.UTC()}
	return upd, secret != c.SecretHash || !sameClientSettings(settings, c.Settings), nil
}

// RotateSecret gives the client the secret hashed as newHash. With a grace
// period the current secret keeps working until now+grace (at most
// [MaxSecretGracePeriod]); without one it stops at once.
func (c Client) RotateSecret(newHash string, grace time.Duration, now time.Time) (events.ClientSecretRotated, error) {
	if c.DeletedAt != nil || c.ID == "" {
		return events.ClientSecretRotated{}, ErrNotFound
	}
	if !ClientUsesSecret(c.Settings.TokenEndpointAuthMethod) {
		return events.ClientSecretRotated{}, ErrNoClientSecret
	}
	if grace < 0 || grace > MaxSecretGracePeriod {
		return events.ClientSecretRotated{}, &ValidationError{Problems: []FieldProblem{{Field: "grace_period", Message: "must be from 0 to 86400 seconds"}}}
	}
	if newHash == "" {
		return events.ClientSecretRotated{}, errors.New("domain: a rotation needs a new secret hash")
	}
	r := events.ClientSecretRotated{ID: c.ID, AccountID: c.AccountID, SecretHash: newHash, RotatedAt: now.UTC()}
	if grace > 0 && c.SecretHash != "" {
		until := now.Add(grace).UTC()
		r.PreviousSecretHash, r.PreviousValidUntil = c.SecretHash, &until
	}
	return r, nil
}

// Delete ends the client and releases its client_id; both events are
// appended together. Deleting a deleted client is [ErrNotFound].
func (c Client) Delete(now time.Time) (events.ClientDeleted, events.ClientIDReleased, error) {
	if c.DeletedAt != nil || c.ID == "" {
		return events.ClientDeleted{}, events.ClientIDReleased{}, ErrNotFound
	}
	return events.ClientDeleted{ID: c.ID, AccountID: c.AccountID, ClientID: c.ClientID, DeletedAt: now.UTC()},
		events.ClientIDReleased{ClientID: c.ClientID, Client: c.ID, AccountID: c.AccountID, ReleasedAt: now.UTC()}, nil
}

// CheckSecret reports whether presented is the client's secret: the current
// one, or the previous one during a rotation's grace period. Both are
// compared in constant time.
func (c Client) CheckSecret(presented string, now time.Time) bool {
	if presented == "" || c.DeletedAt != nil {
		return false
	}
	current := c.SecretHash != "" && MatchesHash(presented, c.SecretHash)
	previous := c.PreviousSecretHash != "" && c.PreviousValidUntil != nil && now.Before(*c.PreviousValidUntil) &&
		MatchesHash(presented, c.PreviousSecretHash)
	return current || previous
}

// Apply folds one event into the client, for rebuilding it from history.
func (c *Client) Apply(ev events.Event) error {
	switch ev.Type {
	case events.TypeClientCreated:
		p, err := events.Decode[events.ClientCreated](ev)
		if err != nil {
			return err
		}
		*c = Client{ID: p.ID, ClientID: p.ClientID, AccountID: p.AccountID, Environment: p.Environment,
			Settings: p.ClientSettings, SecretHash: p.SecretHash, CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt}
	case events.TypeClientUpdated:
		p, err := events.Decode[events.ClientUpdated](ev)
		if err != nil {
			return err
		}
		c.Settings, c.UpdatedAt = p.ClientSettings, p.UpdatedAt
		if p.SecretHash != c.SecretHash {
			c.SecretHash, c.PreviousSecretHash, c.PreviousValidUntil = p.SecretHash, "", nil
		}
	case events.TypeClientSecretRotated:
		p, err := events.Decode[events.ClientSecretRotated](ev)
		if err != nil {
			return err
		}
		c.SecretHash, c.PreviousSecretHash, c.PreviousValidUntil = p.SecretHash, p.PreviousSecretHash, p.PreviousValidUntil
		c.UpdatedAt = p.RotatedAt
	case events.TypeClientDeleted:
		p, err := events.Decode[events.ClientDeleted](ev)
		if err != nil {
			return err
		}
		c.DeletedAt = &p.DeletedAt
	default:
		return nil
	}
	c.Version = ev.Sequence
	return nil
}
