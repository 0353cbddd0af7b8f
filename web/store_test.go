package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
)

// errTableGone is how the audit store reports ClickHouse failing.
var errTableGone = &engine.StoreError{Err: errors.New("write 1 audit records: code: 210, message: connection refused")}

// failingActions answers every action with err.
type failingActions struct{ err error }

func (f failingActions) Acknowledge(context.Context, uint64, string, string) (engine.Alert, error) {
	return engine.Alert{}, f.err
}

func (f failingActions) Resolve(context.Context, uint64, string, string) (engine.Alert, error) {
	return engine.Alert{}, f.err
}

var _ Actions = failingActions{}

// send makes a request and returns its status code and errorType.
func send(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, b := do(t, http.DefaultClient, req)
	var out struct {
		ErrorType string `json:"errorType"`
	}
	_ = json.Unmarshal([]byte(b), &out)
	return resp.StatusCode, out.ErrorType
}

func TestStoreFailuresAnswer503(t *testing.T) {
	var storeDown atomic.Bool
	audit := engine.AuditorFunc(func(context.Context, ...engine.AuditRecord) error {
		if storeDown.Load() {
			return errTableGone
		}
		return nil
	})
	silences := engine.NewSilences(engine.SilencesOptions{Audit: audit})
	ms, err := engine.ParseMatchers(`{tenant_id="acme"}`)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := silences.Add(context.Background(), engine.Silence{Matchers: ms,
		StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour), CreatedBy: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, body string
		actions                  Actions
		storeDown                bool
		code                     int
		errorType                string
	}{
		{"an acknowledgement the audit store cannot record is 503 unavailable", "POST", "/api/v1/alerts/00000000000000ff/ack", `{"by":"alice"}`,
			failingActions{errTableGone}, true, 503, "unavailable"},
		{"a resolve the audit store cannot record is 503 unavailable", "POST", "/api/v1/alerts/00000000000000ff/resolve", `{"by":"alice"}`,
			failingActions{errTableGone}, true, 503, "unavailable"},
		{"an action refused for a bad request is still 400", "POST", "/api/v1/alerts/00000000000000ff/ack", `{}`,
			failingActions{errors.New("say who acknowledges: by is required")}, false, 400, "bad_data"},
		{"a silence the audit store cannot record is 503 unavailable", "POST", "/api/v1/silences",
			`{"matchers":"{tenant_id=\"acme\"}","duration":"1h","createdBy":"bob"}`, nil, true, 503, "unavailable"},
		{"a silence without createdBy is still 400", "POST", "/api/v1/silences",
			`{"matchers":"{tenant_id=\"acme\"}","duration":"1h"}`, nil, true, 400, "bad_data"},
		{"expiring a silence the audit store cannot record is 503 unavailable", "DELETE", "/api/v1/silences/" + kept.ID, "",
			nil, true, 503, "unavailable"},
		{"expiring an unknown silence is still 404", "DELETE", "/api/v1/silences/nope", "", nil, true, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storeDown.Store(tc.storeDown)
			srv := httptest.NewServer(Handler(Options{Rules: staticRules{}, Actions: tc.actions, Silences: silences}))
			defer srv.Close()
			code, typ := send(t, tc.method, srv.URL+tc.path, tc.body)
			if code != tc.code || typ != tc.errorType {
				t.Fatalf("%s %s: %d %q, want %d %q", tc.method, tc.path, code, typ, tc.code, tc.errorType)
			}
		})
	}
}

func TestReloadForce(t *testing.T) {
	var plain, forced atomic.Int32
	refuse := func(context.Context) error {
		plain.Add(1)
		return engine.ErrReloadRefused
	}
	for _, tc := range []struct {
		name, query   string
		noForce       bool
		code          int
		plain, forced int32
	}{
		{"a reload without force calls Reload and answers its refusal", "", false, 500, 1, 0},
		{"force=false is a plain reload", "?force=false", false, 500, 1, 0},
		{"force=true calls ForceReload", "?force=true", false, 200, 0, 1},
		{"force that is not a boolean is a bad request", "?force=yes-please", false, 400, 0, 0},
		{"force=true without ForceReload is refused", "?force=true", true, 404, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain.Store(0)
			forced.Store(0)
			opts := Options{Rules: staticRules{}, Reload: refuse, ForceReload: func(context.Context) error { forced.Add(1); return nil }}
			if tc.noForce {
				opts.ForceReload = nil
			}
			srv := httptest.NewServer(Handler(opts))
			defer srv.Close()
			code, _ := send(t, "POST", srv.URL+"/-/reload"+tc.query, "")
			if code != tc.code || plain.Load() != tc.plain || forced.Load() != tc.forced {
				t.Fatalf("code %d, reloads %d, forced %d; want %d, %d, %d", code, plain.Load(), forced.Load(), tc.code, tc.plain, tc.forced)
			}
		})
	}
}
