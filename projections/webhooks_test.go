package projections_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// appendIn stores one event of account acc_1 in live at time at.
func (l *eventLog) appendIn(t *testing.T, aggType, aggID string, at time.Time, p events.Payload) uint64 {
	t.Helper()
	l.mu.Lock()
	l.n++
	id := fmt.Sprintf("evt_w%d", l.n)
	l.mu.Unlock()
	ev, err := events.New(events.Meta{ID: id, AggregateType: aggType, AggregateID: aggID, AccountID: "acc_1", Environment: "live", Time: at}, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.store.Append(testContext(t), events.Change{Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	return res.Last()
}

func TestWebhookProjections(t *testing.T) {
	t.Parallel()
	log, usage := startEventLog(t), startUsageStream(t)
	db := openMem(t)
	subs, dlvs := projections.NewSubscriptions(db), projections.NewDeliveries(db)
	evP := newProjector(t, db, projections.Config{}, subs, dlvs, projections.DeliveryErrors{})
	usP := newProjector(t, db, projections.Config{Name: "usage", Stream: events.UsageStream, Decode: projections.DecodeUsageBatch},
		projections.UsageErrors{})
	run(t, evP, log.js)
	run(t, usP, usage)
	wait := func(p *projections.Projector, seq uint64) {
		t.Helper()
		if err := p.WaitFor(testContext(t), seq); err != nil {
			t.Fatal(err)
		}
	}

	log.appendIn(t, events.AggregateSubscription, "sub_1", t0, events.SubscriptionCreated{ID: "sub_1", AccountID: "acc_1",
		Environment: "live", URL: "https://x.test/", EventTypes: []string{"token.created", "wallet.low"}, CreatedAt: t0})
	seq := log.appendIn(t, events.AggregateDelivery, "dlv_1", t0, events.DeliveryScheduled{ID: "dlv_1", SubscriptionID: "sub_1",
		AccountID: "acc_1", Environment: "live", EventID: "evt_x", DeliveredType: "token.created", EventSeq: 9, ScheduledAt: t0})
	wait(evP, seq)
	if ids, _ := subs.Matching("acc_1", "live", "token.created"); !slices.Equal(ids, []string{"sub_1"}) {
		t.Fatalf("matching %v", ids)
	}
	if ids, _ := subs.Matching("acc_1", "test", "token.created"); len(ids) != 0 {
		t.Fatalf("matching in test: %v", ids)
	}
	if d, ok, _ := dlvs.Get("dlv_1"); !ok || d.Status != projections.DeliveryPending || d.EventSeq != 9 {
		t.Fatalf("scheduled %+v", d)
	}

	next := t0.Add(time.Minute)
	attempt := func(n int, ok bool, code int, next *time.Time, at time.Time) uint64 {
		return log.appendIn(t, events.AggregateDelivery, "dlv_1", at, events.DeliveryAttempted{ID: "dlv_1", SubscriptionID: "sub_1",
			AccountID: "acc_1", Attempt: n, Succeeded: ok, StatusCode: code, NextAttemptAt: next, AttemptedAt: at})
	}
	attempt(1, false, 500, &next, t0.Add(time.Second))
	attempt(2, false, 502, nil, t0.Add(2*time.Second))
	seq = log.appendIn(t, events.AggregateDelivery, "dlv_1", t0, events.DeliveryDead{ID: "dlv_1", SubscriptionID: "sub_1",
		AccountID: "acc_1", Attempts: 2, Reason: events.DeadExhausted, DeadAt: t0.Add(2 * time.Second)})
	wait(evP, seq)
	d, _, _ := dlvs.Get("dlv_1")
	s, _, _ := subs.Get("sub_1")
	if d.Status != projections.DeliveryDead || d.Attempt != 2 || d.StatusCode != 502 || d.NextAttemptAt != nil {
		t.Fatalf("dead %+v", d)
	}
	if s.ConsecutiveDead != 1 || s.FailingSince == nil || !s.FailingSince.Equal(t0.Add(time.Second)) {
		t.Fatalf("failure record %+v", s)
	}
	if page, _ := dlvs.List("acc_1", "live", projections.DeliveryFilter{Status: projections.DeliveryDead}, "", 10); len(page.Items) != 1 {
		t.Fatalf("dead listing %+v", page)
	}
	if page, _ := dlvs.List("acc_1", "live", projections.DeliveryFilter{Status: projections.DeliveryPending}, "", 10); len(page.Items) != 0 {
		t.Fatalf("pending listing %+v", page)
	}

	log.appendIn(t, events.AggregateDelivery, "dlv_1", t0, events.DeliveryRetryRequested{ID: "dlv_1", SubscriptionID: "sub_1",
		AccountID: "acc_1", Attempt: 3, RequestedAt: t0.Add(3 * time.Second)})
	attempt(3, true, 200, nil, t0.Add(4*time.Second))
	seq = log.appendIn(t, events.AggregateSubscription, "sub_1", t0, events.SubscriptionDisabled{ID: "sub_1", AccountID: "acc_1",
		Reason: "gone", DisabledAt: t0.Add(5 * time.Second)})
	wait(evP, seq)
	d, _, _ = dlvs.Get("dlv_1")
	s, _, _ = subs.Get("sub_1")
	if d.Status != projections.DeliverySucceeded || d.Attempt != 3 {
		t.Fatalf("after retry %+v", d)
	}
	if s.ConsecutiveDead != 0 || s.FailingSince != nil || s.Status != "disabled" || s.Version != seq {
		t.Fatalf("after success and disable %+v", s)
	}
	if ids, _ := subs.Matching("acc_1", "live", "token.created"); len(ids) != 0 {
		t.Fatalf("a disabled subscription matches: %v", ids)
	}

	// Usage errors: a failed verification between the two failed attempts
	// and a server error after them; valid verifies are no errors.
	useq := publishUsage(t, usage, "u1",
		verifyRecord(t0.Add(1500*time.Millisecond), "tok_a", "REVOKED", 0, "1.1.1.1", "dns"),
		verifyRecord(t0.Add(1600*time.Millisecond), "tok_a", "VALID", 0, "1.1.1.1", "dns"),
		events.UsageRecord{ID: "use_5xx", Kind: events.UsageKindAPI, Time: t0.Add(10 * time.Second), AccountID: "acc_1",
			Environment: "live", Endpoint: "POST /tokens", Status: 503})
	wait(usP, useq)
	errs := projections.NewErrors(db)
	var got []projections.ErrorRecord
	cursor := ""
	for {
		page, err := errs.List("acc_1", "live", "", cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Items...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	var kinds []string
	for _, e := range got {
		kinds = append(kinds, e.Kind+"/"+e.Reason)
	}
	want := []string{"server_error/", "delivery_failed/", "verification_failed/REVOKED", "delivery_failed/"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("errors newest first: %v, want %v", kinds, want)
	}
	if got[1].StatusCode != 502 || got[1].DeliveryID != "dlv_1" || got[2].TokenID != "tok_a" {
		t.Fatalf("error details %+v", got)
	}
	if page, _ := errs.List("acc_1", "live", projections.ErrorVerificationFailed, "", 10); len(page.Items) != 1 {
		t.Fatalf("kind filter %+v", page)
	}
	if _, err := errs.List("acc_1", "live", "", "bogus", 10); err == nil {
		t.Fatal("a bad cursor was accepted")
	}
}
