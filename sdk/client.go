package tollgate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Verdicts of POST /verify.
const (
	VerdictValid             = "VALID"
	VerdictNotFound          = "NOT_FOUND"
	VerdictRevoked           = "REVOKED"
	VerdictExpired           = "EXPIRED"
	VerdictForbiddenIP       = "FORBIDDEN_IP"
	VerdictInsufficientScope = "INSUFFICIENT_SCOPE"
	VerdictUsageExceeded     = "USAGE_EXCEEDED"
	VerdictInsufficientFunds = "INSUFFICIENT_FUNDS"
	VerdictRateLimited       = "RATE_LIMITED"
)

// VerifyRequest is the body of POST /verify.
type VerifyRequest struct {
	Token    string   `json:"token"`
	Scopes   []string `json:"scopes,omitempty"`
	Cost     *int64   `json:"cost,omitempty"`
	IP       string   `json:"ip,omitempty"`
	Domain   string   `json:"domain,omitempty"`
	Endpoint string   `json:"endpoint,omitempty"`
}

// Verdict is the answer of POST /verify.
type Verdict struct {
	Valid       bool       `json:"valid"`
	Code        string     `json:"code"`
	TokenID     string     `json:"token_id"`
	AccountID   string     `json:"account_id"`
	Environment string     `json:"environment"`
	Scopes      []string   `json:"scopes"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// Client calls Tollgate's API with a key holding tokens:verify.
type Client struct {
	BaseURL string
	APIKey  string
	HTTP    *http.Client
}

// NewClient returns a client of the Tollgate at baseURL.
func NewClient(baseURL, apiKey string) *Client {
	return &Client{BaseURL: strings.TrimSuffix(baseURL, "/"), APIKey: apiKey, HTTP: &http.Client{Timeout: 5 * time.Second}}
}

// Verify asks Tollgate for a verdict. A verdict other than VALID is not an
// error; an error means Tollgate could not be asked.
func (c *Client) Verify(ctx context.Context, req VerifyRequest) (Verdict, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Verdict{}, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/verify", bytes.NewReader(body))
	if err != nil {
		return Verdict{}, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-API-Key", c.APIKey)
	resp, err := c.HTTP.Do(r)
	if err != nil {
		return Verdict{}, fmt.Errorf("tollgate: verify: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Verdict{}, fmt.Errorf("tollgate: verify answered %d", resp.StatusCode)
	}
	var v struct {
		Verdict
		TokenID     *string `json:"token_id"`
		AccountID   *string `json:"account_id"`
		Environment *string `json:"environment"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return Verdict{}, fmt.Errorf("tollgate: verify answer: %w", err)
	}
	out := v.Verdict
	out.TokenID, out.AccountID, out.Environment = deref(v.TokenID), deref(v.AccountID), deref(v.Environment)
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
