package notify

import (
	"crypto/hmac"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// webhookReceiver is a receiver that checks callwatch's signature the way
// the documentation tells receivers to: recompute the HMAC of timestamp +
// "." + body (or the query string of a GET) with its own secret, compare in
// constant time, reject stale timestamps. A request that fails gets 401.
func webhookReceiver(t *testing.T, secret string) *service {
	return newService(t, func(w http.ResponseWriter, r request) {
		if secret != "" {
			ts := r.Header.Get(TimestampHeader)
			sec, err := strconv.ParseInt(ts, 10, 64)
			if err != nil || sendTime.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
				http.Error(w, "stale or missing timestamp", http.StatusUnauthorized)
				return
			}
			payload := r.Body
			if r.Method == http.MethodGet {
				payload = []byte(r.RawQuery)
			}
			want := "sha256=" + WebhookSignature(secret, ts, payload)
			if !hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(want)) {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func TestWebhookPostsPayloadV1(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch Batch
	}{
		{"webhook_v1_firing.json", firingBatch()},
		{"webhook_v1_resolved.json", resolvedBatch()},
		{"webhook_v1_digest.json", digestBatch()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := webhookReceiver(t, "")
			s := newSender(t, ChannelConfig{Name: "hook", Type: "webhook", URL: rcv.URL + "/hook",
				Headers: map[string]string{"X-Token": "t0k3n"}}, Options{})
			if err := send(t, s, tc.batch); err != nil {
				t.Fatal(err)
			}
			reqs := rcv.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/hook" || r.Header.Get("X-Token") != "t0k3n" ||
				r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("request %s %s, headers %v", r.Method, r.Path, r.Header)
			}
			goldenBodies(t, tc.name, reqs)
		})
	}
}

func TestWebhookV1Fields(t *testing.T) {
	rcv := webhookReceiver(t, "")
	s := newSender(t, ChannelConfig{Name: "hook", Type: "webhook", URL: rcv.URL}, Options{})
	b := firingBatch()
	b.Alerts = append(b.Alerts, resolvedAlert(costAlert("gamma", 101)))
	if err := send(t, s, b); err != nil {
		t.Fatal(err)
	}
	var p PayloadV1
	decodeJSON(t, rcv.requests()[0].Body, &p)
	if p.Version != "1" || p.Status != "firing" || p.Group != "baseline-volume" || p.Rule != "TenantCost" ||
		!p.SentAt.Equal(sendTime) || len(p.Alerts) != 3 {
		t.Fatalf("payload = %+v", p)
	}
	a := p.Alerts[0]
	if a.Fingerprint != fingerprint(b.Alerts[0]) || a.Status != "firing" || a.Labels["tenant_id"] != "acme" ||
		*a.Value != 123.456 || !a.StartsAt.Equal(evalTime.Add(-2*time.Minute)) || !a.FiredAt.Equal(evalTime) || a.EndsAt != nil ||
		a.GeneratorURL != "http://callwatch.example:9099/#rule-baseline-volume/TenantCost" {
		t.Errorf("firing alert = %+v", a)
	}
	if r := p.Alerts[2]; r.Status != "resolved" || r.EndsAt == nil || !r.EndsAt.Equal(evalTime.Add(20*time.Minute)) {
		t.Errorf("resolved alert = %+v", r)
	}
}

func TestWebhookV1WritesNaNAsNull(t *testing.T) {
	rcv := webhookReceiver(t, "")
	s := newSender(t, ChannelConfig{Name: "hook", Type: "webhook", URL: rcv.URL}, Options{})
	b := singleBatch()
	b.Alerts[0].Value = nan()
	if err := send(t, s, b); err != nil {
		t.Fatal(err)
	}
	contains(t, "body", string(rcv.requests()[0].Body), `"value":null`)
}

func TestWebhookLegacyPayloadHasTheReplacedServicesFields(t *testing.T) {
	for _, lang := range []string{"zh", "en"} {
		t.Run(lang, func(t *testing.T) {
			rcv := webhookReceiver(t, "")
			s := newSender(t, ChannelConfig{Name: "old", Type: "webhook", URL: rcv.URL, Payload: "legacy", Language: lang}, Options{})
			b := firingBatch()
			b.Alerts = append(b.Alerts, resolvedAlert(costAlert("gamma", 101))) // not sent: the old service never sent resolutions
			if err := send(t, s, b); err != nil {
				t.Fatal(err)
			}
			reqs := rcv.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want one per firing alert", len(reqs))
			}
			goldenBodies(t, "webhook_legacy_"+lang+".json", reqs)
			var got map[string]any
			decodeJSON(t, reqs[0].Body, &got)
			var keys []string
			for k, v := range got {
				keys = append(keys, k)
				if _, ok := v.(string); !ok {
					t.Errorf("%s is %T, want a string", k, v)
				}
			}
			sort.Strings(keys)
			if want := "alert_id,alert_type,created_at,message,metric_value,severity,threshold_value,title"; strings.Join(keys, ",") != want {
				t.Errorf("fields %v, want %s", keys, want)
			}
			want := map[string]any{
				"alert_id": fingerprint(b.Alerts[0]), "title": "[HIGH] TenantCost", "severity": "error",
				"alert_type": "cost_threshold", "metric_value": "123.456", "threshold_value": "¥100.00",
				"created_at": "2025-11-24T16:00:00+00:00",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestWebhookLegacyCreatedAtIsInTheSendersLocation(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600) // Asia/Shanghai, without needing tzdata
	rcv := webhookReceiver(t, "")
	s := newSender(t, ChannelConfig{Name: "old", Type: "webhook", URL: rcv.URL, Payload: "legacy"}, Options{Location: shanghai})
	if err := send(t, s, singleBatch()); err != nil {
		t.Fatal(err)
	}
	var p LegacyPayload
	decodeJSON(t, rcv.requests()[0].Body, &p)
	if p.CreatedAt != "2025-11-25T00:00:00+08:00" {
		t.Errorf("created_at = %q", p.CreatedAt)
	}
	if p.Message != "规则 'LatencyAvgHigh' 触发告警\n当前值: 3456.789\n应用: chat" || p.Title != "[WARNING] LatencyAvgHigh" {
		t.Errorf("generated title %q, message %q", p.Title, p.Message)
	}
}

func TestWebhookGetSendsQueryParameters(t *testing.T) {
	t.Run("legacy", func(t *testing.T) {
		rcv := webhookReceiver(t, "")
		s := newSender(t, ChannelConfig{Name: "old", Type: "webhook", URL: rcv.URL + "/notify?token=abc", Method: "GET",
			Payload: "legacy", Headers: map[string]string{"X-Token": "t"}}, Options{})
		if err := send(t, s, firingBatch()); err != nil {
			t.Fatal(err)
		}
		reqs := rcv.requests()
		if len(reqs) != 2 {
			t.Fatalf("%d requests, want 2", len(reqs))
		}
		q := reqs[1].Query
		if reqs[1].Method != http.MethodGet || len(reqs[1].Body) != 0 || reqs[1].Header.Get("X-Token") != "t" {
			t.Errorf("request %s with body %q, headers %v", reqs[1].Method, reqs[1].Body, reqs[1].Header)
		}
		if q.Get("token") != "abc" || q.Get("title") != "[HIGH] TenantCost" || q.Get("metric_value") != "250" ||
			q.Get("alert_type") != "cost_threshold" || q.Get("alert_id") != fingerprint(firingBatch().Alerts[1]) ||
			!strings.Contains(q.Get("message"), "租户: beta") || q.Get("created_at") != "2025-11-24T16:00:00+00:00" {
			t.Errorf("query = %v", q)
		}
	})
	t.Run("v1", func(t *testing.T) {
		rcv := webhookReceiver(t, "")
		s := newSender(t, ChannelConfig{Name: "hook", Type: "webhook", URL: rcv.URL, Method: "GET"}, Options{})
		if err := send(t, s, resolvedBatch()); err != nil {
			t.Fatal(err)
		}
		reqs := rcv.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		want := url.Values{
			"version": {"1"}, "status": {"resolved"}, "group": {"baseline-volume"}, "rule": {"TenantCost"},
			"fingerprint": {fingerprint(resolvedBatch().Alerts[0])}, "value": {"123.456"},
			"startsAt": {"2025-11-24T15:58:00Z"}, "firedAt": {"2025-11-24T16:00:00Z"}, "endsAt": {"2025-11-24T16:20:00Z"},
			"sentAt": {"2025-11-24T16:00:01.5Z"}, "labels.tenant_id": {"acme"}, "labels.alertname": {"TenantCost"},
			"annotations.threshold": {"¥100.00"},
		}
		for k, v := range want {
			if got := reqs[0].Query[k]; strings.Join(got, ",") != v[0] {
				t.Errorf("%s = %q, want %q", k, got, v[0])
			}
		}
	})
}

func TestWebhookSignatureIsVerifiedByTheReceiver(t *testing.T) {
	for _, tc := range []struct {
		name, method, payload string
	}{
		{"POST v1", "POST", "v1"},
		{"POST legacy", "POST", "legacy"},
		{"GET legacy", "GET", "legacy"},
		{"GET v1", "GET", "v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := webhookReceiver(t, "s3cr3t")
			cfg := ChannelConfig{Name: "hook", Type: "webhook", URL: rcv.URL + "/hook?x=1", Method: tc.method, Payload: tc.payload, Secret: "s3cr3t"}
			if err := send(t, newSender(t, cfg, Options{}), firingBatch()); err != nil {
				t.Fatalf("right secret: %v", err)
			}
			if got := rcv.requests()[0].Header.Get(SignatureHeader); !strings.HasPrefix(got, "sha256=") || len(got) != 7+64 {
				t.Errorf("signature header %q", got)
			}
			cfg.Secret = "wrong"
			err := send(t, newSender(t, cfg, Options{}), firingBatch())
			if classify(err) != "permanent" || !strings.Contains(err.Error(), "401") {
				t.Errorf("wrong secret: %v, want a permanent HTTP 401", err)
			}
		})
	}
}

func TestWebhookClassifiesStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		header string
		want   string
	}{
		{200, "", "ok"},
		{202, "", "ok"},
		{204, "", "ok"},
		{400, "", "permanent"},
		{401, "", "permanent"},
		{404, "", "permanent"},
		{408, "", "retry"},
		{429, "7", "retry after 7s"},
		{429, "", "retry"},
		{500, "", "retry"},
		{503, "", "retry"},
	} {
		t.Run(http.StatusText(tc.status)+" "+tc.header, func(t *testing.T) {
			for _, payload := range []string{"v1", "legacy"} {
				srv := newService(t, func(w http.ResponseWriter, _ request) {
					if tc.header != "" {
						w.Header().Set("Retry-After", tc.header)
					}
					w.WriteHeader(tc.status)
				})
				s := newSender(t, ChannelConfig{Name: "hook", Type: "webhook", URL: srv.URL, Payload: payload}, Options{})
				if got := classify(send(t, s, firingBatch())); got != tc.want {
					t.Errorf("%s: got %s, want %s", payload, got, tc.want)
				}
			}
		})
	}
}

func TestWebhookLegacyReportsFailuresOfSomeAlerts(t *testing.T) {
	var n atomic.Int32
	srv := newService(t, func(w http.ResponseWriter, _ request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	s := newSender(t, ChannelConfig{Name: "old", Type: "webhook", URL: srv.URL, Payload: "legacy"}, Options{})
	err := send(t, s, firingBatch())
	if classify(err) != "retry" {
		t.Errorf("got %v, want retry", err)
	}
	if len(srv.requests()) != 2 {
		t.Errorf("the second alert was not tried after the first failed")
	}
}
