package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/embedded"
)

// revokeTimeout bounds the wait for one revocation to reach node B.
const revokeTimeout = 5 * time.Second

// prepareRevoke sets up two nodes of one cluster: in-process, two nodes on
// one embedded NATS server (each its own projections); with --url and
// --url-b, the two given nodes.
func (s *Session) prepareRevoke(ctx context.Context) (func(context.Context, int) (Result, error), error) {
	baseA, baseB := s.opts.URL, s.opts.URLB
	if baseA != "" && baseB == "" {
		return nil, errors.New("needs --url-b, a second node of the same cluster")
	}
	if baseA == "" {
		srv, err := embedded.Start(embedded.Options{StoreDir: filepath.Join(s.dir, "revoke-nats"), Listen: "127.0.0.1:0", ServerName: "bench-revoke"})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, srv.Stop)
		a, err := s.startNode(ctx, "revoke-a", srv.ClientURL())
		if err != nil {
			return nil, err
		}
		b, err := s.startNode(ctx, "revoke-b", srv.ClientURL())
		if err != nil {
			return nil, err
		}
		baseA, baseB = a.URL(), b.URL()
	}
	t, err := s.newTenant(baseA, "bench-revoke")
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, n int) (Result, error) {
		k := n
		if k <= 0 {
			k = s.opts.RevokeTokens
		}
		return s.runRevoke(ctx, t, baseA, baseB, k)
	}, nil
}

// runRevoke, for each of k tokens: create it on A, verify it once on B (so
// B has it loaded), revoke it on A, then ask B again and again until it
// answers REVOKED. Latency runs from A's answer to the revoke (the
// revocation is in the log and applied on A) to B's first REVOKED.
func (s *Session) runRevoke(ctx context.Context, t *tenant, baseA, baseB string, k int) (Result, error) {
	var lat []time.Duration
	var errs int64
	var firstErr error
	fail := func(err error) {
		errs++
		if firstErr == nil {
			firstErr = err
		}
	}
	var done atomic.Int64
	stop := s.prog.track(RevokePropagation, countStatus("revocations", done.Load, int64(k)))
	verifyB := func(token string) (string, error) {
		body, _ := json.Marshal(map[string]any{"token": token, "cost": 0})
		status, answer, err := s.client.do("POST", baseB+"/verify", body, [2]string{"X-API-Key", t.verifier}, [2]string{"Content-Type", "application/json"})
		if err != nil || status != 200 {
			return "", errors.Join(err, fmt.Errorf("verify on B: status %d: %.200s", status, answer))
		}
		var v struct {
			Code string `json:"code"`
		}
		err = json.Unmarshal(answer, &v)
		return v.Code, err
	}
	var busy time.Duration
	s.profiled(RevokePropagation, func() {
		for i := 0; i < k && ctx.Err() == nil; i++ {
			done.Store(int64(i))
			var tok struct {
				ID    string `json:"id"`
				Token string `json:"token"`
			}
			if err := s.api(baseA, t.owner, "POST", "/tokens", map[string]any{"name": fmt.Sprintf("revoke-%d", i),
				"scopes": []string{"domains:read"}, "rate_limit": unlimited}, 201, &tok); err != nil {
				fail(err)
				continue
			}
			if code, err := verifyB(tok.Token); err != nil || code != "VALID" {
				fail(errors.Join(err, fmt.Errorf("before revoking, B says %q", code)))
				continue
			}
			t0 := time.Now()
			if err := s.api(baseA, t.owner, "DELETE", "/tokens/"+tok.ID, nil, 204, nil); err != nil {
				fail(err)
				continue
			}
			revoked := time.Now()
			for {
				code, err := verifyB(tok.Token)
				if err == nil && code == "REVOKED" {
					lat = append(lat, time.Since(revoked))
					break
				}
				if err == nil && code != "VALID" {
					err = fmt.Errorf("node B says %q while the revocation travels", code)
				}
				if err != nil || time.Since(revoked) > revokeTimeout {
					fail(errors.Join(err, fmt.Errorf("node B did not reject a revoked token within %s", revokeTimeout)))
					break
				}
			}
			busy += time.Since(t0)
		}
		done.Store(int64(k))
	})
	stop()
	res := Result{Unit: "revocations/s", Count: int64(len(lat)) + errs, Errors: errs,
		Settings: map[string]any{"tokens": k, "nodes": 2, "poll": "POST /verify on B back to back"}}
	if busy > 0 {
		res.Throughput = float64(len(lat)) / busy.Seconds()
	}
	res.P50Ms, res.P90Ms = ms(Quantile(lat, 0.5)), ms(Quantile(lat, 0.9))
	res.P99Ms, res.MaxMs = ms(Quantile(lat, 0.99)), ms(Quantile(lat, 1))
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	res.Notes = append(res.Notes, "time from A's answer to DELETE /tokens/{id} to B's first REVOKED verdict; "+
		"throughput = revocations ÷ time spent revoking and polling")
	if s.opts.URL == "" {
		res.Notes = append(res.Notes, "two in-process nodes on one embedded NATS server, each with its own projections")
	}
	return res, nil
}
