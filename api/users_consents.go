package api

import (
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// consentView is a consent in force as the API shows it.
type consentView struct {
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func viewConsent(r projections.ConsentRecord) consentView {
	return consentView{ClientID: r.ClientID, Scopes: nonNil(r.Scopes), GrantedAt: r.GrantedAt, UpdatedAt: r.UpdatedAt}
}

func consentOf(r projections.ConsentRecord, found bool) domain.Consent {
	if !found {
		return domain.Consent{}
	}
	return domain.Consent{UserID: r.UserID, Client: r.Client, Scopes: r.Scopes, Revoked: r.RevokedAt != nil}
}

// listConsents is GET /users/:id/consents: the clients the user has
// allowed, with the scopes.
func (a *API) listConsents(c *fiber.Ctx) error {
	rec, err := a.ownUser(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := a.Consents.ListByUser(rec.ID, c.Query("cursor"), limit)
	return sendPage(c, page, err, viewConsent)
}

// revokeConsent is DELETE /users/:id/consents/:client_id: the next
// authorization asks the user again, and the grants the user gave the
// client are revoked (their access and refresh tokens stop working).
func (a *API) revokeConsent(c *fiber.Ctx) error {
	clientID, err := url.PathUnescape(c.Params("client_id"))
	if err != nil {
		return notFound("consent")
	}
	for attempt := 0; ; attempt++ {
		user, err := a.ownUser(c)
		if err != nil {
			return err
		}
		rec, found, err := a.consentByClientID(user.ID, clientID)
		if err != nil {
			return err
		}
		x := a.cmd(c)
		ev, err := consentOf(rec, found).Revoke(rec.ClientID, rec.AccountID, x.now)
		if err != nil {
			return notFound("consent")
		}
		change, err := clientChange(x, events.AggregateConsent, events.ConsentKey(rec.UserID, rec.Client), rec.AccountID, rec.Environment, ev)
		if err != nil {
			return err
		}
		change.Expect = events.ExpectVersion(rec.Version)
		retry, err := a.commitOrRetry(c, attempt, "the consent is being changed concurrently; retry", change)
		if retry {
			continue
		}
		if err != nil {
			return err
		}
		if err := a.revokeGrantsOf(c, rec.UserID, rec.Client, "the user withdrew consent"); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// consentByClientID finds the user's consent in force to the client that
// has (or had) clientID.
func (a *API) consentByClientID(user, clientID string) (projections.ConsentRecord, bool, error) {
	cursor := ""
	for {
		page, err := a.Consents.ListByUser(user, cursor, 500)
		if err != nil {
			return projections.ConsentRecord{}, false, err
		}
		for _, r := range page.Items {
			if r.ClientID == clientID {
				return r, true, nil
			}
		}
		if page.NextCursor == "" {
			return projections.ConsentRecord{}, false, nil
		}
		cursor = page.NextCursor
	}
}
