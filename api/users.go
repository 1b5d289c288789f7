package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// userRequest is the body of POST /users.
type userRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// passwordRequest is the body of PUT /users/:id/password.
type passwordRequest struct {
	Password string `json:"password"`
}

// userView is a user as the API shows it: never the password or its hash.
type userView struct {
	ID                string     `json:"id"`
	AccountID         string     `json:"account_id"`
	Environment       string     `json:"environment"`
	Username          string     `json:"username"`
	Status            string     `json:"status"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	PasswordChangedAt time.Time  `json:"password_changed_at"`
	DisabledAt        *time.Time `json:"disabled_at"`
}

func viewUser(r projections.UserRecord) userView {
	return userView{ID: r.ID, AccountID: r.AccountID, Environment: r.Environment, Username: r.Username,
		Status: userOf(r).Status(), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, PasswordChangedAt: r.PasswordChangedAt,
		DisabledAt: r.DisabledAt}
}

func userOf(r projections.UserRecord) domain.User {
	return domain.User{ID: r.ID, AccountID: r.AccountID, Environment: r.Environment, Username: r.Username,
		PasswordHash: r.PasswordHash, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, DisabledAt: r.DisabledAt,
		DeletedAt: r.DeletedAt, Version: r.Version}
}

// hashNewPassword applies the password policy and hashes the password.
func hashNewPassword(x cmdCtx, pw string) (string, error) {
	if problem := domain.CheckPasswordPolicy(pw); problem != "" {
		return "", invalidRequest("password "+problem, domain.FieldProblem{Field: "password", Message: problem})
	}
	return domain.HashPassword(x.rand, pw)
}

func (a *API) createUser(c *fiber.Ctx) error {
	var req userRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	if problem := domain.ValidUsername(req.Username); problem != "" {
		return invalidRequest("username "+problem, domain.FieldProblem{Field: "username", Message: problem})
	}
	x := a.cmd(c)
	hash, err := hashNewPassword(x, req.Password)
	if err != nil {
		return err
	}
	id, err := domain.NewID(x.rand, domain.UserIDPrefix, 20)
	if err != nil {
		return err
	}
	env := principal(c).Environment
	created, claimed, err := domain.NewUser(domain.CreateUser{ID: id, AccountID: account, Environment: env,
		Username: req.Username, PasswordHash: hash}, x.now)
	if err != nil {
		return err
	}
	createdChange, err := clientChange(x, events.AggregateUser, id, account, env, created)
	if err != nil {
		return err
	}
	claimKey := events.UsernameKey(account, env, req.Username)
	claimChange, err := clientChange(x, events.AggregateUsername, claimKey, account, env, claimed)
	if err != nil {
		return err
	}
	createdChange.Expect = events.ExpectNew
	if err := a.claimUsernameAndCreate(c, account, env, req.Username, createdChange, claimChange); err != nil {
		return err
	}
	rec, ok, err := a.Users.Get(id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("user %s applied but missing from the projection", id)
	}
	c.Set(fiber.HeaderLocation, "/users/"+id)
	return c.Status(fiber.StatusCreated).JSON(viewUser(rec))
}

// claimUsernameAndCreate appends user.created with the claim on its
// username in one atomic batch (see createWithClaim).
func (a *API) claimUsernameAndCreate(c *fiber.Ctx, account, env, username string, created, claim events.Change) error {
	return a.createWithClaim(c, created, claim, events.AggregateUsername, events.UsernameKey(account, env, username),
		func() (claimState, bool, error) {
			cl, ok, err := a.Users.Claim(account, env, username)
			return claimState{cl.Released, cl.Version}, ok, err
		}, fmt.Sprintf("username %q is taken", username))
}

// userByID looks a user up, asking the stream on a miss (it may have been
// created on another node a moment ago).
func (a *API) userByID(ctx context.Context, id string) (projections.UserRecord, bool, error) {
	if !strings.HasPrefix(id, domain.UserIDPrefix) || !events.ValidID(id) {
		return projections.UserRecord{}, false, nil
	}
	rec, ok, err := a.Users.Get(id)
	if err != nil || ok {
		return rec, ok, err
	}
	exists, err := a.fresh(ctx, events.AggregateUser, id)
	if err != nil || !exists {
		return rec, false, err
	}
	return a.Users.Get(id)
}

// userByUsername finds the live user with username in an account and
// environment, asking the stream when this node does not know it yet.
func (a *API) userByUsername(ctx context.Context, account, env, username string) (projections.UserRecord, bool, error) {
	if domain.ValidUsername(username) != "" {
		return projections.UserRecord{}, false, nil
	}
	rec, ok, err := a.Users.ByUsername(account, env, username)
	if err != nil || ok {
		return rec, ok, err
	}
	key := events.UsernameKey(account, env, username)
	if a.unknown.has("username/" + key) {
		return rec, false, nil
	}
	if _, err := a.fresh(ctx, events.AggregateUsername, key); err != nil {
		return rec, false, err
	}
	rec, ok, err = a.Users.ByUsername(account, env, username)
	if err == nil && !ok {
		a.unknown.add("username/" + key)
	}
	return rec, ok, err
}

// ownUser finds a live user the caller may see: of its account (any, for
// admin with account_id) and of its key's environment. Anything else is 404.
func (a *API) ownUser(c *fiber.Ctx) (projections.UserRecord, error) {
	account, err := a.targetAccount(c)
	if err != nil {
		return projections.UserRecord{}, err
	}
	ctx, cancel := a.writeCtx(c)
	defer cancel()
	rec, ok, err := a.userByID(ctx, c.Params("id"))
	if err != nil {
		return rec, err
	}
	if !ok || rec.AccountID != account || rec.Environment != principal(c).Environment || rec.DeletedAt != nil {
		return projections.UserRecord{}, notFound("user")
	}
	return rec, nil
}

func (a *API) getUser(c *fiber.Ctx) error {
	rec, err := a.ownUser(c)
	if err != nil {
		return err
	}
	return c.JSON(viewUser(rec))
}

func (a *API) listUsers(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := a.Users.ListByAccount(account, principal(c).Environment, c.Query("cursor"), limit)
	return sendPage(c, page, err, viewUser)
}

// changeUser appends one event decided on the user's current state,
// deciding again once if another write got there first.
func (a *API) changeUser(c *fiber.Ctx, decide func(domain.User, cmdCtx) (events.Payload, error)) (projections.UserRecord, error) {
	for attempt := 0; ; attempt++ {
		rec, err := a.ownUser(c)
		if err != nil {
			return rec, err
		}
		x := a.cmd(c)
		p, err := decide(userOf(rec), x)
		if err != nil {
			return rec, err
		}
		change, err := clientChange(x, events.AggregateUser, rec.ID, rec.AccountID, rec.Environment, p)
		if err != nil {
			return rec, err
		}
		change.Expect = events.ExpectVersion(rec.Version)
		retry, err := a.commitOrRetry(c, attempt, "the user is being changed concurrently; retry", change)
		if retry {
			continue
		}
		if err != nil {
			return rec, err
		}
		fresh, _, err := a.Users.Get(rec.ID)
		return fresh, err
	}
}

// changePassword is PUT /users/:id/password.
func (a *API) changePassword(c *fiber.Ctx) error {
	var req passwordRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	rec, err := a.changeUser(c, func(u domain.User, x cmdCtx) (events.Payload, error) {
		hash, err := hashNewPassword(x, req.Password)
		if err != nil {
			return nil, err
		}
		return u.ChangePassword(hash, x.now)
	})
	if err != nil {
		return err
	}
	return c.JSON(viewUser(rec))
}

// disableUser is POST /users/:id/disable: the user can no longer log in,
// and every grant (refresh-token family) issued for it is revoked.
func (a *API) disableUser(c *fiber.Ctx) error {
	rec, err := a.changeUser(c, func(u domain.User, x cmdCtx) (events.Payload, error) { return u.Disable(x.now) })
	if errors.Is(err, domain.ErrConflict) {
		err = nil // disabled already: the grants were revoked then
	} else if err == nil {
		err = a.revokeGrantsOf(c, rec.ID, "", "the user was disabled")
	}
	if err != nil {
		return err
	}
	return c.JSON(viewUser(rec))
}

// deleteUser ends a user and releases its username in one atomic append;
// its grants are revoked.
func (a *API) deleteUser(c *fiber.Ctx) error {
	for attempt := 0; ; attempt++ {
		rec, err := a.ownUser(c)
		if err != nil {
			return err
		}
		claim, ok, err := a.Users.Claim(rec.AccountID, rec.Environment, rec.Username)
		if err != nil {
			return err
		}
		if !ok || claim.User != rec.ID || claim.Released {
			return fmt.Errorf("user %s: claim on its username missing from the projection (%+v)", rec.ID, claim)
		}
		x := a.cmd(c)
		deleted, released, err := userOf(rec).Delete(x.now)
		if err != nil {
			return err
		}
		deletedChange, err := clientChange(x, events.AggregateUser, rec.ID, rec.AccountID, rec.Environment, deleted)
		if err != nil {
			return err
		}
		key := events.UsernameKey(rec.AccountID, rec.Environment, rec.Username)
		releasedChange, err := clientChange(x, events.AggregateUsername, key, rec.AccountID, rec.Environment, released)
		if err != nil {
			return err
		}
		deletedChange.Expect, releasedChange.Expect = events.ExpectVersion(rec.Version), events.ExpectVersion(claim.Version)
		_, err = a.commit(c, deletedChange, releasedChange)
		if isConflict(err) && attempt < 2 {
			if err := errors.Join(a.syncAggregate(c, events.AggregateUser, rec.ID), a.syncAggregate(c, events.AggregateUsername, key)); err != nil {
				return err
			}
			continue
		}
		if isConflict(err) {
			return conflict("the user is being changed concurrently; retry")
		}
		if err != nil {
			return err
		}
		if err := a.revokeGrantsOf(c, rec.ID, "", "the user was deleted"); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}
