package amtest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAlertmanagerAcceptsAlertsAndAmtoolListsThem(t *testing.T) {
	am := Start(t)
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := `[{"labels":{"alertname":"AmtestProbe","tenant_id":"acme"},` +
		`"annotations":{"summary":"probe"},"startsAt":"` + start + `","endsAt":"` + end + `"}]`
	resp, err := http.Post(am.URL+"/api/v2/alerts", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
	alerts := am.Query(t, "alertname=AmtestProbe")
	if len(alerts) != 1 {
		t.Fatalf("amtool lists %d alerts, want 1: %+v", len(alerts), alerts)
	}
	if got := alerts[0].Labels["tenant_id"]; got != "acme" {
		t.Errorf("tenant_id = %q, want acme", got)
	}
	if got := alerts[0].Annotations["summary"]; got != "probe" {
		t.Errorf("summary = %q, want probe", got)
	}
}

func TestTwoAlertmanagersRunSideBySide(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.URL == b.URL {
		t.Fatalf("both Alertmanagers listen on %s", a.URL)
	}
	if got := a.Query(t); len(got) != 0 {
		t.Errorf("a fresh Alertmanager lists %d alerts", len(got))
	}
	b.Close()
	b.Close() // idempotent
}
