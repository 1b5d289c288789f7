package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// findBrowser is Chromium or Chrome: $CHROME_PATH, /usr/bin/chromium, or
// the first of chromium, chromium-browser, google-chrome on PATH.
func findBrowser() string {
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactsDir is $TOLLGATE_ARTIFACTS_DIR, else <repo>/artifacts.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("TOLLGATE_ARTIFACTS_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "artifacts")
}

// A real browser logs in, consents and follows the redirect back to the
// application; x/oauth2 exchanges the code with PKCE and refreshes. The
// consent page is saved as a screenshot artifact.
func TestBrowserAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	browserPath := findBrowser()
	if browserPath == "" {
		if os.Getenv("TOLLGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Chromium found (CHROME_PATH, /usr/bin/chromium, chromium, chromium-browser, google-chrome) and TOLLGATE_REQUIRE_BROWSER=1")
		}
		t.Skip("no Chromium found (set CHROME_PATH, or install chromium); TOLLGATE_REQUIRE_BROWSER=1 makes this a failure")
	}
	n := tollgatetest.Start(t)

	// The application's callback, on loopback.
	callbacks := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			select {
			case callbacks <- r.URL.RawQuery:
			default:
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("signed in"))
	}))
	t.Cleanup(app.Close)
	redirect := app.URL + "/callback"
	f := newAuthzFixture(t, n.URL(), map[string]any{"redirect_uris": []string{redirect}})
	cfg := f.oauthConfig("domains:read", "domains:write")
	cfg.RedirectURL = redirect
	verifier := oauth2.GenerateVerifier()
	state := randomState(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(800, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	err := chromedp.Do(ctx,
		chromedp.Navigate(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(`#username`),
		chromedp.SendKeys(`#username`, "alice"),
		chromedp.SendKeys(`#password`, userPassword),
		chromedp.Click(`#sign-in`),
		chromedp.WaitVisible(`#allow`),
	)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	consentText, err := chromedp.Run(ctx, chromedp.Text(`main`))
	if err != nil {
		t.Fatal(err)
	}
	consentShot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 makes a PNG
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Acme Dashboard", "domains:read", "domains:write", "alice"} {
		if !strings.Contains(consentText, want) {
			t.Errorf("consent page lacks %q: %s", want, consentText)
		}
	}
	dir := artifactsDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "consent-page.png")
	if err := os.WriteFile(shot, consentShot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("consent page screenshot: %s", shot)

	if err := chromedp.Do(ctx, chromedp.Click(`#allow`)); err != nil {
		t.Fatalf("consent: %v", err)
	}
	var query string
	select {
	case query = <-callbacks:
	case <-ctx.Done():
		t.Fatal("the browser never reached the application's redirect URI")
	}
	landed, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasPrefix(landed, redirect) {
		t.Fatalf("browser at %q (%v)", landed, err)
	}
	u, err := urlParseQuery(query)
	if err != nil || u.Get("state") != state || u.Get("code") == "" {
		t.Fatalf("callback %q", query)
	}
	tok, err := exchange(t, cfg, u.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if in := f.introspect(t, tok.AccessToken); !active(in) || in["sub"] != f.user.ID {
		t.Fatalf("introspection %v", in)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := cfg.TokenSource(context.Background(), tok).Token()
	if err != nil || fresh.RefreshToken == tok.RefreshToken || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %v %+v", err, fresh)
	}
}
