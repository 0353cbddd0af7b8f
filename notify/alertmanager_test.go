package notify

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/amtest"
)

// fakeAM answers POST /api/v2/alerts like Alertmanager: 200 for a valid
// list, 400 for one it cannot decode, status for everything when set.
func fakeAM(t *testing.T, status int) *service {
	return newService(t, func(w http.ResponseWriter, r request) {
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if r.Method != http.MethodPost || !strings.HasSuffix(r.Path, "/api/v2/alerts") {
			http.NotFound(w, nil)
			return
		}
		var alerts []amAlert
		if err := json.Unmarshal(r.Body, &alerts); err != nil || len(alerts) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": "bad alerts"})
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

func TestAlertmanagerPostsWhatPrometheusPosts(t *testing.T) {
	am := fakeAM(t, 0)
	s := newSender(t, ChannelConfig{Name: "am", Type: "alertmanager", URLs: []string{am.URL + "/prefix"},
		Headers: map[string]string{"Authorization": "Bearer x"}}, Options{})
	b := firingBatch()
	b.Alerts = append(b.Alerts, resolvedAlert(costAlert("gamma", 101)))
	if err := send(t, s, b); err != nil {
		t.Fatal(err)
	}
	reqs := am.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/prefix/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "Bearer x" {
		t.Errorf("request to %s with %v", r.Path, r.Header)
	}
	goldenBodies(t, "alertmanager.json", reqs)
	var got []amAlert
	decodeJSON(t, r.Body, &got)
	if len(got) != 3 {
		t.Fatalf("%d alerts, want 3", len(got))
	}
	// Prometheus (rules.SendAlerts): startsAt = FiredAt, endsAt = ValidUntil
	// while firing and ResolvedAt once resolved; labels exactly the alert's.
	if got[0].StartsAt != "2025-11-24T16:00:00.000Z" || got[0].EndsAt != "2025-11-24T16:04:00.000Z" {
		t.Errorf("firing alert times %s – %s", got[0].StartsAt, got[0].EndsAt)
	}
	if got[2].EndsAt != "2025-11-24T16:20:00.000Z" {
		t.Errorf("resolved alert endsAt %s", got[2].EndsAt)
	}
	if want := b.Alerts[0].Labels.Map(); !mapsEqual(got[0].Labels, want) {
		t.Errorf("labels %v, want exactly %v", got[0].Labels, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestAlertmanagerSendsTheSameAlertsToEveryAlertmanager(t *testing.T) {
	a, b := fakeAM(t, 0), fakeAM(t, 0)
	s := newSender(t, ChannelConfig{Name: "am", Type: "alertmanager", URLs: []string{a.URL, b.URL}}, Options{})
	if err := send(t, s, firingBatch()); err != nil {
		t.Fatal(err)
	}
	ra, rb := a.requests(), b.requests()
	if len(ra) != 1 || len(rb) != 1 || string(ra[0].Body) != string(rb[0].Body) {
		t.Errorf("bodies differ between the replicas:\n%s\n%s", ra[0].Body, rb[0].Body)
	}
}

func TestAlertmanagerFailureNamesTheFailedAlertmanagers(t *testing.T) {
	ok, down, bad := fakeAM(t, 0), fakeAM(t, http.StatusServiceUnavailable), fakeAM(t, http.StatusBadRequest)
	for _, tc := range []struct {
		name    string
		urls    []string
		want    string
		failed  []string
		succeed []string
	}{
		{"all accept", []string{ok.URL, ok.URL + "/x"}, "ok", nil, nil},
		{"one is down: retryable", []string{ok.URL, down.URL}, "retry", []string{down.URL}, []string{ok.URL}},
		{"one rejects, one is down: retryable", []string{bad.URL, down.URL}, "retry", []string{bad.URL, down.URL}, nil},
		{"all reject: permanent", []string{bad.URL, bad.URL + "/y"}, "permanent", []string{bad.URL}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSender(t, ChannelConfig{Name: "am", Type: "alertmanager", URLs: tc.urls}, Options{})
			err := send(t, s, firingBatch())
			if got := classify(err); got != tc.want {
				t.Fatalf("got %s (%v), want %s", got, err, tc.want)
			}
			for _, u := range tc.failed {
				contains(t, "error", err.Error(), u)
			}
			for _, u := range tc.succeed {
				if strings.Contains(err.Error(), u+"/api") {
					t.Errorf("error names %s, which accepted: %v", u, err)
				}
			}
		})
	}
}

func TestAlertmanagerSendsADigestAsOneList(t *testing.T) {
	am := fakeAM(t, 0)
	s := newSender(t, ChannelConfig{Name: "am", Type: "alertmanager", URLs: []string{am.URL}}, Options{})
	if err := send(t, s, digestBatch()); err != nil {
		t.Fatal(err)
	}
	var got []amAlert
	decodeJSON(t, am.requests()[0].Body, &got)
	if len(got) != 4 {
		t.Errorf("%d alerts, want the 4 of the digest's batches", len(got))
	}
}

// TestAlertmanagerEndToEnd sends to two real Alertmanagers (Debian's
// prometheus-alertmanager 0.25) and checks with amtool that both show the
// alert with its labels, then that the resolved alert is no longer active.
func TestAlertmanagerEndToEnd(t *testing.T) {
	am1, am2 := amtest.Start(t), amtest.Start(t)
	s := newSender(t, ChannelConfig{Name: "am", Type: "alertmanager", URLs: []string{am1.URL, am2.URL}}, Options{Now: time.Now})

	// Alertmanager judges endsAt against its own clock: use real times.
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := costAlert("acme", 123.456)
	a.ActiveAt, a.FiredAt, a.LastSentAt, a.ValidUntil = now.Add(-3*time.Minute), now.Add(-time.Minute), now, now.Add(4*time.Minute)
	b := Batch{Group: "baseline-volume", Rule: costRule(), Time: now, Alerts: []engine.Alert{a}}
	if err := send(t, s, b); err != nil {
		t.Fatal(err)
	}
	for _, am := range []*amtest.Alertmanager{am1, am2} {
		got := am.Query(t, "alertname=TenantCost")
		if len(got) != 1 {
			t.Fatalf("%s: amtool lists %d TenantCost alerts, want 1: %+v", am.URL, len(got), got)
		}
		g := got[0]
		if !mapsEqual(g.Labels, a.Labels.Map()) {
			t.Errorf("%s: labels %v, want %v", am.URL, g.Labels, a.Labels.Map())
		}
		if g.Annotations["summary"] != a.Annotations.Get("summary") || g.Status.State != "active" {
			t.Errorf("%s: annotations %v, state %q", am.URL, g.Annotations, g.Status.State)
		}
		if !g.StartsAt.Equal(a.FiredAt) || !g.EndsAt.Equal(a.ValidUntil) {
			t.Errorf("%s: %s – %s, want %s – %s", am.URL, g.StartsAt, g.EndsAt, a.FiredAt, a.ValidUntil)
		}
		if g.GeneratorURL != "http://callwatch.example:9099/#rule-baseline-volume/TenantCost" {
			t.Errorf("%s: generatorURL %q", am.URL, g.GeneratorURL)
		}
		// The extended table shows it too, as an operator would see it.
		contains(t, "amtool -o extended", string(am.Amtool(t, "alert", "query", "-o", "extended", "alertname=TenantCost")), "tenant_id=\"acme\"")
	}
	if fp1, fp2 := am1.Query(t)[0].Fingerprint, am2.Query(t)[0].Fingerprint; fp1 != fp2 {
		t.Errorf("the replicas fingerprint the alert differently: %s, %s", fp1, fp2)
	}

	// Resolve it now: Alertmanager drops it from the active alerts.
	a.ResolvedAt = time.Now().UTC().Add(-time.Second).Truncate(time.Millisecond)
	a.State = engine.StateInactive
	b.Alerts = []engine.Alert{a}
	if err := send(t, s, b); err != nil {
		t.Fatal(err)
	}
	for _, am := range []*amtest.Alertmanager{am1, am2} {
		if got := am.Query(t, "alertname=TenantCost"); len(got) != 0 {
			t.Errorf("%s: amtool still lists %d TenantCost alerts after resolution: %+v", am.URL, len(got), got)
		}
		if got := am.Query(t); slices.ContainsFunc(got, func(x amtest.Alert) bool { return x.Status.State == "active" }) {
			t.Errorf("%s: active alerts remain: %+v", am.URL, got)
		}
	}
}
