package domain

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate/tollgate/events"
)

// Account is a tenant: it owns tokens, clients, wallets and statistics.
type Account struct {
	ID        string
	Name      string
	Root      bool
	CreatedAt time.Time
	// Version is the stream sequence of the account's last event.
	Version uint64
}

// CreateAccount is the command that opens an account.
type CreateAccount struct {
	ID   string
	Name string
	Root bool
}

// NewAccount validates the command and returns the account's first event.
func NewAccount(cmd CreateAccount, now time.Time) (events.AccountCreated, error) {
	var v validation
	name := strings.TrimSpace(cmd.Name)
	checkName(&v, "name", name)
	if !events.ValidID(cmd.ID) {
		v.add("id", "must be letters, digits, '_' or '-'")
	}
	if err := v.err(); err != nil {
		return events.AccountCreated{}, err
	}
	return events.AccountCreated{ID: cmd.ID, Name: name, Root: cmd.Root, CreatedAt: now.UTC()}, nil
}

func checkName(v *validation, field, name string) {
	switch {
	case name == "":
		v.add(field, "is required")
	case utf8.RuneCountInString(name) > 200:
		v.add(field, "must be at most 200 characters")
	case !utf8.ValidString(name):
		v.add(field, "must be valid UTF-8")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		v.add(field, "must not contain control characters")
	}
}
