package projections

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// UserRecord is the read model of a user. PasswordHash is argon2id; the
// password itself is never stored. A deleted user keeps its record
// (DeletedAt set) but leaves the account listing and its username.
type UserRecord struct {
	ID                string     `json:"id"`
	AccountID         string     `json:"account_id"`
	Environment       string     `json:"environment"`
	Username          string     `json:"username"`
	PasswordHash      string     `json:"password_hash"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	PasswordChangedAt time.Time  `json:"password_changed_at"`
	DisabledAt        *time.Time `json:"disabled_at,omitempty"`
	DeletedAt         *time.Time `json:"deleted_at,omitempty"`
	// Seq is the stream sequence of user.created: the listing order.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the user's last event.
	Version uint64 `json:"version"`
}

// UsernameClaim is the read model of the claim on one username.
type UsernameClaim struct {
	Username string `json:"username"`
	// User holds the claim, or last held it when Released.
	User     string `json:"user"`
	Released bool   `json:"released,omitempty"`
	// Version is the stream sequence of the claim aggregate's last event.
	Version uint64 `json:"version"`
}

// Users projects users by id, by username and by account and environment.
// Records are cached: every login and refresh reads one.
type Users struct {
	db      *pebble.DB
	cache   *recordCache[UserRecord]
	touched []string
}

// NewUsers returns the users projection on db.
func NewUsers(db *pebble.DB) *Users {
	return &Users{db: db, cache: newRecordCache[UserRecord](100_000)}
}

var (
	_ Projection = (*Users)(nil)
	_ Committer  = (*Users)(nil)
)

// Keys: usr/<id> holds the record, usrn/<UsernameKey> the claim on a
// username, usracc/<account>/<env>/<seq> (value: id) lists an account's
// live users in creation order.
const (
	prefixUser        = "usr/"
	prefixUsername    = "usrn/"
	prefixUserAccount = "usracc/"
)

func (*Users) Name() string       { return "users" }
func (*Users) Version() int       { return 1 }
func (*Users) Prefixes() []string { return []string{prefixUser, prefixUsername, prefixUserAccount} }

func (u *Users) AfterCommit() {
	u.cache.invalidate(u.touched)
	u.touched = u.touched[:0]
}

func (u *Users) AfterReset() { u.cache.clear() }

func userKey(id string) []byte { return []byte(prefixUser + id) }

func userByAccountKey(account, env string, seq uint64) []byte {
	return append([]byte(prefixUserAccount+account+"/"+env+"/"), u64(seq)...)
}

func (u *Users) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeUserCreated:
		p, err := events.Decode[events.UserCreated](ev)
		if err != nil {
			return err
		}
		u.touched = append(u.touched, p.ID)
		if err := tx.SetJSON(userKey(p.ID), &UserRecord{
			ID: p.ID, AccountID: p.AccountID, Environment: p.Environment, Username: p.Username, PasswordHash: p.PasswordHash,
			CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt, PasswordChangedAt: p.CreatedAt, Seq: ev.Sequence, Version: ev.Sequence,
		}); err != nil {
			return err
		}
		return tx.Set(userByAccountKey(p.AccountID, p.Environment, ev.Sequence), []byte(p.ID))
	case events.TypeUserPasswordChanged:
		p, err := events.Decode[events.UserPasswordChanged](ev)
		if err != nil {
			return err
		}
		return u.update(tx, p.ID, ev.Sequence, func(r *UserRecord) error {
			r.PasswordHash, r.PasswordChangedAt, r.UpdatedAt = p.PasswordHash, p.ChangedAt, p.ChangedAt
			return nil
		})
	case events.TypeUserDisabled:
		p, err := events.Decode[events.UserDisabled](ev)
		if err != nil {
			return err
		}
		return u.update(tx, p.ID, ev.Sequence, func(r *UserRecord) error {
			r.DisabledAt, r.UpdatedAt = &p.DisabledAt, p.DisabledAt
			return nil
		})
	case events.TypeUserDeleted:
		p, err := events.Decode[events.UserDeleted](ev)
		if err != nil {
			return err
		}
		return u.update(tx, p.ID, ev.Sequence, func(r *UserRecord) error {
			r.DeletedAt, r.UpdatedAt = &p.DeletedAt, p.DeletedAt
			return tx.Delete(userByAccountKey(r.AccountID, r.Environment, r.Seq))
		})
	case events.TypeUsernameClaimed:
		p, err := events.Decode[events.UsernameClaimed](ev)
		if err != nil {
			return err
		}
		if err := checkUsernameSubject(ev, p.AccountID, p.Environment, p.Username); err != nil {
			return err
		}
		return tx.SetJSON([]byte(prefixUsername+ev.AggregateID), &UsernameClaim{Username: p.Username, User: p.User, Version: ev.Sequence})
	case events.TypeUsernameReleased:
		p, err := events.Decode[events.UsernameReleased](ev)
		if err != nil {
			return err
		}
		if err := checkUsernameSubject(ev, p.AccountID, p.Environment, p.Username); err != nil {
			return err
		}
		claim := UsernameClaim{Username: p.Username, User: p.User}
		if _, err := tx.GetJSON([]byte(prefixUsername+ev.AggregateID), &claim); err != nil {
			return err
		}
		if claim.User == p.User {
			claim.Released = true
		}
		claim.Version = ev.Sequence
		return tx.SetJSON([]byte(prefixUsername+ev.AggregateID), &claim)
	}
	return nil
}

// checkUsernameSubject refuses a claim event stored under another
// username's aggregate: the key is derived, never trusted.
func checkUsernameSubject(ev events.Event, account, env, username string) error {
	if ev.AggregateType != events.AggregateUsername || ev.AggregateID != events.UsernameKey(account, env, username) {
		return fmt.Errorf("%s of %q stored under %s %s", ev.Type, username, ev.AggregateType, ev.AggregateID)
	}
	return nil
}

func (u *Users) update(tx *Tx, id string, seq uint64, change func(*UserRecord) error) error {
	var rec UserRecord
	ok, err := tx.GetJSON(userKey(id), &rec)
	if err != nil || !ok {
		return err
	}
	if err := change(&rec); err != nil {
		return err
	}
	rec.Version = seq
	u.touched = append(u.touched, id)
	return tx.SetJSON(userKey(id), &rec)
}

// Get returns the user with id, deleted or not.
func (u *Users) Get(id string) (UserRecord, bool, error) {
	return u.cache.load(u.db, prefixUser, id)
}

// Claim returns the claim on a username of an account and environment.
func (u *Users) Claim(account, env, username string) (UsernameClaim, bool, error) {
	var c UsernameClaim
	ok, err := getJSON(u.db, []byte(prefixUsername+events.UsernameKey(account, env, username)), &c)
	return c, ok, err
}

// ByUsername returns the live user holding username in an account and
// environment.
func (u *Users) ByUsername(account, env, username string) (UserRecord, bool, error) {
	claim, ok, err := u.Claim(account, env, username)
	if err != nil || !ok || claim.Released {
		return UserRecord{}, false, err
	}
	rec, ok, err := u.Get(claim.User)
	if err != nil || !ok || rec.DeletedAt != nil {
		return UserRecord{}, false, err
	}
	return rec, true, nil
}

// ListByAccount lists an account's users of one environment in creation
// order, starting after cursor; deleted users are left out.
func (u *Users) ListByAccount(account, env, cursor string, limit int) (Page[UserRecord], error) {
	return listInOrder(u.db, []byte(prefixUserAccount+account+"/"+env+"/"), cursor, limit, u.Get,
		func(r UserRecord) uint64 { return r.Seq }, func(r UserRecord) bool { return r.DeletedAt == nil })
}
