package domain

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate/tollgate/events"
)

// UserIDPrefix starts the id of every user.
const UserIDPrefix = "usr_"

// User statuses.
const (
	UserActive   = "active"
	UserDisabled = "disabled"
	UserDeleted  = "deleted"
)

// MaxUsernameLength bounds a username, in characters.
const MaxUsernameLength = 100

// User is a person who logs in to authorize OAuth clients of the account
// it belongs to. Its password is kept as an argon2id hash.
type User struct {
	ID           string
	AccountID    string
	Environment  string
	Username     string
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	DisabledAt   *time.Time
	DeletedAt    *time.Time
	// Version is the stream sequence of the user's last event.
	Version uint64
}

// CreateUser is the command that adds a user. The password is hashed
// outside (argon2id is slow on purpose); the command carries the hash.
type CreateUser struct {
	ID           string
	AccountID    string
	Environment  string
	Username     string
	PasswordHash string
}

// ValidUsername says what is wrong with a username, "" if nothing: 1 to
// 100 printable characters without spaces at either end.
func ValidUsername(s string) string {
	switch {
	case s == "":
		return "is required"
	case !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxUsernameLength:
		return "must be at most 100 characters of valid UTF-8"
	case strings.TrimSpace(s) != s:
		return "must not start or end with a space"
	case strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return "must be printable characters"
	}
	return ""
}

// NewUser validates the command and returns the user's first event and the
// claim on its username, to be appended together.
func NewUser(cmd CreateUser, now time.Time) (events.UserCreated, events.UsernameClaimed, error) {
	var v validation
	if !strings.HasPrefix(cmd.ID, UserIDPrefix) || !events.ValidID(cmd.ID) {
		v.add("id", "is not a valid user id")
	}
	if p := ValidUsername(cmd.Username); p != "" {
		v.add("username", "%s", p)
	}
	if !events.ValidID(cmd.AccountID) {
		v.add("account_id", "is not a valid account id")
	}
	if cmd.Environment != EnvLive && cmd.Environment != EnvTest {
		v.add("environment", "must be %q or %q", EnvLive, EnvTest)
	}
	if _, _, _, err := parsePasswordHash(cmd.PasswordHash); err != nil {
		v.add("password", "was not hashed")
	}
	if err := v.err(); err != nil {
		return events.UserCreated{}, events.UsernameClaimed{}, err
	}
	at := now.UTC()
	return events.UserCreated{ID: cmd.ID, AccountID: cmd.AccountID, Environment: cmd.Environment, Username: cmd.Username,
			PasswordHash: cmd.PasswordHash, CreatedAt: at},
		events.UsernameClaimed{Username: cmd.Username, User: cmd.ID, AccountID: cmd.AccountID, Environment: cmd.Environment, ClaimedAt: at}, nil
}

// Status is active, disabled or deleted.
func (u User) Status() string {
	switch {
	case u.DeletedAt != nil:
		return UserDeleted
	case u.DisabledAt != nil:
		return UserDisabled
	}
	return UserActive
}

// Active reports whether the user exists and may log in.
func (u User) Active() bool { return u.ID != "" && u.Status() == UserActive }

// ChangePassword replaces the password hash. A deleted user is [ErrNotFound].
func (u User) ChangePassword(hash string, now time.Time) (events.UserPasswordChanged, error) {
	if u.ID == "" || u.DeletedAt != nil {
		return events.UserPasswordChanged{}, ErrNotFound
	}
	if _, _, _, err := parsePasswordHash(hash); err != nil {
		return events.UserPasswordChanged{}, err
	}
	return events.UserPasswordChanged{ID: u.ID, AccountID: u.AccountID, PasswordHash: hash, ChangedAt: now.UTC()}, nil
}

// Disable stops the user from logging in. Disabling twice is [ErrConflict]
// (the caller answers without appending again).
func (u User) Disable(now time.Time) (events.UserDisabled, error) {
	switch {
	case u.ID == "" || u.DeletedAt != nil:
		return events.UserDisabled{}, ErrNotFound
	case u.DisabledAt != nil:
		return events.UserDisabled{}, ErrConflict
	}
	return events.UserDisabled{ID: u.ID, AccountID: u.AccountID, DisabledAt: now.UTC()}, nil
}

// Delete ends the user and releases its username; both events are appended
// together.
func (u User) Delete(now time.Time) (events.UserDeleted, events.UsernameReleased, error) {
	if u.ID == "" || u.DeletedAt != nil {
		return events.UserDeleted{}, events.UsernameReleased{}, ErrNotFound
	}
	at := now.UTC()
	return events.UserDeleted{ID: u.ID, AccountID: u.AccountID, Username: u.Username, DeletedAt: at},
		events.UsernameReleased{Username: u.Username, User: u.ID, AccountID: u.AccountID, Environment: u.Environment, ReleasedAt: at}, nil
}

// Login checks a password for the user: false for a wrong password and for
// a user who may not log in (the check takes the same time either way).
func (u User) Login(pw string) bool {
	if !u.Active() {
		return CheckNoPassword(pw)
	}
	return CheckPassword(u.PasswordHash, pw)
}
