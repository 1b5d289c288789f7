package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/events"
)

// The login, consent and error pages: server-rendered HTML with inline CSS,
// nothing loaded from anywhere. The CSP allows exactly that stylesheet (by
// its hash), forms posting to this server (and, for the redirect that
// follows a form, the client's redirect_uri origin), and no framing.
const pageCSS = `body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2433;margin:0}
main{max-width:26rem;margin:4rem auto;background:#fff;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem}
h1{font-size:1.3rem;margin:0 0 1rem}p{line-height:1.45}label{display:block;margin:.8rem 0 .3rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #c5cad3;border-radius:6px;font-size:1rem}
button{margin-top:1.2rem;padding:.65rem 1.2rem;border:0;border-radius:6px;font-size:1rem;cursor:pointer;background:#2457d6;color:#fff}
button.secondary{background:#e3e6ec;color:#1d2433;margin-left:.5rem}.error{background:#fdecec;color:#8a1c1c;padding:.6rem .8rem;border-radius:6px}
ul.scopes{padding:0;list-style:none}ul.scopes li{border:1px solid #e3e6ec;border-radius:6px;padding:.6rem .8rem;margin:.4rem 0}
ul.scopes code{font-weight:600}.muted{color:#5b6475;font-size:.9rem}`

var pageStyleHash = func() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

var pages = template.Must(template.New("pages").Parse(`
{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.}} · Tollgate</title><style>` + pageCSS + `</style></head><body><main>{{end}}
{{define "bottom"}}</main></body></html>{{end}}

{{define "login"}}{{template "top" "Sign in"}}
<h1>Sign in to continue to {{.ClientName}}</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}" id="login">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="request" value="{{.Request}}">
<label for="username">Username</label><input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>{{template "bottom"}}{{end}}

{{define "consent"}}{{template "top" "Allow access"}}
<h1>{{.ClientName}} wants to access your account</h1>
<p>Signed in as <strong>{{.Username}}</strong>. {{.ClientName}} (<code>{{.ClientID}}</code>) asks for:</p>
<ul class="scopes">{{range .Scopes}}<li><code>{{.Name}}</code><br><span class="muted">{{.Description}}</span></li>{{end}}</ul>
<form method="post" action="{{.Action}}" id="consent">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="request" value="{{.Request}}">
<button type="submit" name="decision" value="allow" id="allow">Allow</button><button type="submit" name="decision" value="deny" id="deny" class="secondary">Deny</button>
</form>
<p class="muted">You can withdraw this consent later; you will then be asked again.</p>{{template "bottom"}}{{end}}

{{define "error"}}{{template "top" .Title}}
<h1>{{.Title}}</h1><p class="error" role="alert">{{.Message}}</p>
<p class="muted">Go back to the application and start again. Nothing was sent to it.</p>{{template "bottom"}}{{end}}
`))

// loginPage and consentPage: Action is where the form posts (the login
// or consent path under the prefix the page was served from).
type loginPage struct {
	Action, ClientName, CSRF, Request, Username, Error string
}

type scopeLine struct{ Name, Description string }

type consentPage struct {
	Action, ClientName, ClientID, Username, CSRF, Request string
	Scopes                                                []scopeLine
}

// pageError is shown as an error page, never sent to the client: an
// unknown client, a redirect_uri that is not registered, a stale form.
type pageError struct {
	status         int
	title, message string
}

func (e *pageError) Error() string { return e.title + ": " + e.message }

func badAuthorization(msg string) *pageError {
	return &pageError{status: fiber.StatusBadRequest, title: "This sign-in link is not valid", message: msg}
}

// redirectError is an RFC 6749 §4.1.2.1 error sent to the client's
// redirect_uri, which is known to be registered. Like a code, it carries
// the RFC 9207 iss parameter.
type redirectError struct {
	redirectURI, code, description, state string
}

func (e *redirectError) Error() string { return e.code + ": " + e.description }

// render writes a page with the headers every page carries. formOrigin is
// the origin a form of the page may end up redirecting to.
func (a *API) render(c *fiber.Ctx, status int, name string, data any, formOrigin string) error {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	formAction := "'self'"
	if formOrigin != "" {
		formAction += " " + formOrigin
	}
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; style-src "+pageStyleHash+"; form-action "+formAction+
		"; frame-ancestors 'none'; base-uri 'none'")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// origin is scheme://host of a URL, for the CSP.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// redirect sends the browser to the client: 302 after the GET of the
// authorization endpoint, 303 after a form.
func (a *API) redirect(c *fiber.Ctx, target string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	status := fiber.StatusFound
	if c.Method() == fiber.MethodPost {
		status = fiber.StatusSeeOther
	}
	return c.Redirect(target, status)
}

// withParams adds parameters to a redirect URI's query, keeping its own.
func withParams(redirectURI string, params ...string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	q := u.Query()
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] != "" {
			q.Set(params[i], params[i+1])
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// page turns a browser-facing handler's errors into answers a browser
// shows: a redirect to the client for RFC errors, an error page otherwise.
// Infrastructure failures become a 503 or 500 page (logged), never JSON.
func (a *API) page(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		err := h(c)
		if err == nil {
			return nil
		}
		var re *redirectError
		if errors.As(err, &re) {
			return a.redirect(c, withParams(re.redirectURI, "error", re.code, "error_description", re.description, "state", re.state,
				"iss", a.issuer()))
		}
		var pe *pageError
		if !errors.As(err, &pe) {
			pe = &pageError{status: fiber.StatusInternalServerError, title: "Something went wrong", message: "Try again in a moment."}
			if errors.Is(err, events.ErrUnavailable) || errors.Is(err, events.ErrConflict) || errors.Is(err, context.DeadlineExceeded) {
				pe.status, pe.title = fiber.StatusServiceUnavailable, "Temporarily unavailable"
				a.Logger.Warn("authorization page unavailable", "path", c.Path(), "request_id", requestID(c), "err", err)
			} else {
				a.Logger.Error("authorization page failed", "path", c.Path(), "request_id", requestID(c), "err", err)
			}
		}
		return a.render(c, pe.status, "error", struct{ Title, Message string }{pe.title, pe.message}, "")
	}
}
