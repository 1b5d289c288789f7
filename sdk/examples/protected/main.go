// Command protected is a downstream service guarded by Tollgate: its API
// needs a token Tollgate finds VALID (checked through POST /verify, cached
// for a few seconds, and refused the moment its revocation arrives on the
// event log), and it receives Tollgate's webhooks, checking their
// signatures.
//
//	go run ./examples/protected --tollgate http://127.0.0.1:8080 --nats nats://127.0.0.1:4222 \
//	    --api-key "$VERIFIER_KEY" --webhook-secret "$WHSEC"
//
// The key needs the tokens:verify scope. Then:
//
//	curl -H "Authorization: Bearer $CUSTOMER_TOKEN" localhost:9090/hello
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	tollgate "github.com/tollgate/tollgate/sdk"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "protected:", err)
		os.Exit(1)
	}
}

func run() error {
	base := flag.String("tollgate", "http://127.0.0.1:8080", "Tollgate's base URL")
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "Tollgate's NATS (its --nats-listen)")
	key := flag.String("api-key", os.Getenv("TOLLGATE_API_KEY"), "API key with tokens:verify (or TOLLGATE_API_KEY)")
	listen := flag.String("listen", "127.0.0.1:9090", "listen address")
	state := flag.String("state", "revocations.json", "where the revocation follower keeps its state")
	secret := flag.String("webhook-secret", "", "signing secret of a Tollgate subscription pointing at /webhooks (whsec_…)")
	ttl := flag.Duration("cache", 5*time.Second, "how long a VALID verdict is reused")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(*natsURL, nats.Name("protected"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	follower, err := tollgate.NewRevocationFollower(nc, tollgate.FollowerConfig{StatePath: *state})
	if err != nil {
		return err
	}
	go func() {
		if err := follower.Run(ctx); err != nil {
			slog.Error("revocation follower stopped", "err", err)
			stop()
		}
	}()
	guard := tollgate.NewGuard(tollgate.GuardConfig{Client: tollgate.NewClient(*base, *key), Follower: follower, CacheTTL: *ttl})

	mux := http.NewServeMux()
	mux.Handle("/hello", guard.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := tollgate.VerdictFrom(r.Context())
		fmt.Fprintf(w, "hello, token %s of account %s\n", v.TokenID, v.AccountID)
	})))
	if *secret != "" {
		verifier, err := tollgate.NewWebhookVerifier(*secret)
		if err != nil {
			return err
		}
		mux.HandleFunc("/webhooks", func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			p, err := verifier.Verify(r.Header, body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			// Deliveries are at least once: deduplicate on webhook-id.
			slog.Info("webhook", "id", r.Header.Get("webhook-id"), "type", p.Type)
			w.WriteHeader(http.StatusNoContent)
		})
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
