package api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
)

// The login session lives in a cookie sealed with AES-256-GCM under a key
// derived (HKDF-SHA256) from the cluster's key-encryption key, so every
// node reads what any node wrote and nothing is stored server-side. The
// pending authorization request travels through the login and consent
// forms sealed the same way under a second derived key, bound to the
// session's CSRF secret: a form cannot be replayed in another browser or
// altered (state, redirect_uri, scopes, PKCE challenge) on the way.
const (
	sessionCookie = "tollgate_session"
	// sessionTTL is how long a login lasts; preSessionTTL how long the
	// anonymous session that carries the login form's CSRF secret lasts.
	sessionTTL    = 8 * time.Hour
	preSessionTTL = time.Hour
	// pendingTTL is how long a login or consent form may be submitted.
	pendingTTL = 10 * time.Minute
)

// session is the content of the session cookie.
type session struct {
	// CSRF is the secret every form of this browser carries back.
	CSRF string `json:"c"`
	// UserID is set once the user logged in.
	UserID   string `json:"u,omitempty"`
	AuthTime int64  `json:"t,omitempty"`
	Expires  int64  `json:"x"`
}

// sealer encrypts and authenticates small values for the browser.
type sealer struct {
	aead cipher.AEAD
	rand io.Reader
}

func newSealer(kek []byte, purpose string, rnd io.Reader) (*sealer, error) {
	key, err := hkdf.Key(sha256.New, kek, nil, "tollgate/"+purpose+"/v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, rand: rnd}, nil
}

// seal returns v as JSON, sealed with additional data ad, in base64url.
func (s *sealer) seal(v any, ad string) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(ad))), nil
}

var errUnsealed = errors.New("sealed value is not authentic")

// open reverses seal into v.
func (s *sealer) open(sealed, ad string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return errUnsealed
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(ad))
	if err != nil {
		return errUnsealed
	}
	if json.Unmarshal(plain, v) != nil {
		return errUnsealed
	}
	return nil
}

// readSession returns the browser's unexpired session.
func (a *API) readSession(c *fiber.Ctx) (session, bool) {
	raw := c.Cookies(sessionCookie)
	if raw == "" || len(raw) > 4096 {
		return session{}, false
	}
	var s session
	if a.sessions.open(raw, sessionCookie, &s) != nil || s.CSRF == "" || a.now(c).Unix() >= s.Expires {
		return session{}, false
	}
	return s, true
}

// newSession makes a session with a fresh CSRF secret: anonymous, or
// logged in as userID.
func (a *API) newSession(c *fiber.Ctx, userID string) (session, error) {
	csrf := make([]byte, 32)
	if _, err := io.ReadFull(a.Rand, csrf); err != nil {
		return session{}, err
	}
	now := a.now(c)
	s := session{CSRF: base64.RawURLEncoding.EncodeToString(csrf), Expires: now.Add(preSessionTTL).Unix()}
	if userID != "" {
		s.UserID, s.AuthTime, s.Expires = userID, now.Unix(), now.Add(sessionTTL).Unix()
	}
	return s, a.writeSession(c, s)
}

// ensureSession returns the browser's session, starting an anonymous one
// if it has none.
func (a *API) ensureSession(c *fiber.Ctx) (session, error) {
	if s, ok := a.readSession(c); ok {
		return s, nil
	}
	return a.newSession(c, "")
}

// writeSession sets the cookie: HttpOnly, SameSite=Lax, Secure when the
// browser talks HTTPS, expiring with the session.
func (a *API) writeSession(c *fiber.Ctx, s session) error {
	sealed, err := a.sessions.seal(s, sessionCookie)
	if err != nil {
		return err
	}
	exp := time.Unix(s.Expires, 0)
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: sealed, Path: "/", Expires: exp,
		MaxAge: int(exp.Sub(a.now(c)).Seconds()), HTTPOnly: true, Secure: a.browserUsesHTTPS(c), SameSite: fiber.CookieSameSiteLaxMode})
	return nil
}

// browserUsesHTTPS: the listener serves TLS, or a trusted proxy says the
// browser used HTTPS.
func (a *API) browserUsesHTTPS(c *fiber.Ctx) bool {
	return a.cfg.TLS || (a.trusted(remoteAddr(c)) && strings.EqualFold(c.Get(fiber.HeaderXForwardedProto), "https"))
}

// checkCSRF compares a form's csrf field with the session's, in constant
// time.
func checkCSRF(s session, presented string) bool {
	return presented != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(s.CSRF)) == 1
}
