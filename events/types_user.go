package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Aggregate types of users. A user is aggregate "user" under a generated id
// (usr_…), in one account and environment. Usernames are unique per account
// and environment, case-insensitively; the cluster-wide claim on one is a
// second aggregate, "username", whose id is [UsernameKey].
const (
	AggregateUser     = "user"
	AggregateUsername = "username"
)

// Event types of users and their username claims.
const (
	TypeUserCreated         = "user.created"
	TypeUserPasswordChanged = "user.password_changed"
	TypeUserDisabled        = "user.disabled"
	TypeUserDeleted         = "user.deleted"
	TypeUsernameClaimed     = "user.username_claimed"
	TypeUsernameReleased    = "user.username_released"
)

// UsernameKey is the aggregate id of the claim on a username in an account
// and environment: the hex SHA-256 of the three, the username lower-cased.
func UsernameKey(account, env, username string) string {
	sum := sha256.Sum256([]byte(account + "\x00" + env + "\x00" + strings.ToLower(username)))
	return hex.EncodeToString(sum[:])
}

// UserCreated is the first event of a user. PasswordHash is an argon2id
// hash in the PHC string format; the password itself is never stored.
type UserCreated struct {
	ID           string    `json:"id"`
	AccountID    string    `json:"account_id"`
	Environment  string    `json:"environment"`
	Username     string    `json:"username"`
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
}

func (UserCreated) EventType() string { return TypeUserCreated }
func (UserCreated) EventVersion() int { return 1 }

// UserPasswordChanged replaces a user's password hash (argon2id).
type UserPasswordChanged struct {
	ID           string    `json:"id"`
	AccountID    string    `json:"account_id"`
	PasswordHash string    `json:"password_hash"`
	ChangedAt    time.Time `json:"changed_at"`
}

func (UserPasswordChanged) EventType() string { return TypeUserPasswordChanged }
func (UserPasswordChanged) EventVersion() int { return 1 }

// UserDisabled stops a user from logging in; the refresh tokens issued for
// the user stop working.
type UserDisabled struct {
	ID         string    `json:"id"`
	AccountID  string    `json:"account_id"`
	DisabledAt time.Time `json:"disabled_at"`
}

func (UserDisabled) EventType() string { return TypeUserDisabled }
func (UserDisabled) EventVersion() int { return 1 }

// UserDeleted ends a user. It is appended together with
// [UsernameReleased], so the username can be taken again.
type UserDeleted struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Username  string    `json:"username"`
	DeletedAt time.Time `json:"deleted_at"`
}

func (UserDeleted) EventType() string { return TypeUserDeleted }
func (UserDeleted) EventVersion() int { return 1 }

// UsernameClaimed reserves a username in an account and environment for
// one user. It is appended in the same atomic batch as [UserCreated],
// expecting the claim aggregate to be empty or, after a release, at its
// last sequence.
type UsernameClaimed struct {
	Username    string    `json:"username"`
	User        string    `json:"user"`
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	ClaimedAt   time.Time `json:"claimed_at"`
}

func (UsernameClaimed) EventType() string { return TypeUsernameClaimed }
func (UsernameClaimed) EventVersion() int { return 1 }

// UsernameReleased gives a username up when its user is deleted.
type UsernameReleased struct {
	Username    string    `json:"username"`
	User        string    `json:"user"`
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	ReleasedAt  time.Time `json:"released_at"`
}

func (UsernameReleased) EventType() string { return TypeUsernameReleased }
func (UsernameReleased) EventVersion() int { return 1 }
