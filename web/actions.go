package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Actions are the operator actions on alerts.
type Actions interface {
	Acknowledge(ctx context.Context, fp uint64, by, comment string) (engine.Alert, error)
	Resolve(ctx context.Context, fp uint64, by, comment string) (engine.Alert, error)
}

// actionRequest is the body of ack and resolve (JSON or form values).
type actionRequest struct {
	By      string `json:"by"`
	Comment string `json:"comment"`
}

// decode reads a JSON body or form values into v.
func decode(r *http.Request, v any) error {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("request body: %w", err)
		}
		return nil
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	b, _ := json.Marshal(formMap(r))
	return json.Unmarshal(b, v)
}

func formMap(r *http.Request) map[string]string {
	m := map[string]string{}
	for k, v := range r.Form {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

func (a *api) alertAction(w http.ResponseWriter, r *http.Request) {
	if a.opts.Actions == nil {
		fail(w, http.StatusNotFound, "unavailable", errors.New("alert actions are not enabled"))
		return
	}
	fp, err := engine.ParseFingerprint(r.PathValue("fingerprint"))
	if err != nil {
		fail(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	var req actionRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	var al engine.Alert
	switch r.PathValue("action") {
	case "ack":
		al, err = a.opts.Actions.Acknowledge(r.Context(), fp, req.By, req.Comment)
	case "resolve":
		al, err = a.opts.Actions.Resolve(r.Context(), fp, req.By, req.Comment)
	default:
		fail(w, http.StatusNotFound, "not_found", errors.New("actions are ack and resolve"))
		return
	}
	switch {
	case errors.Is(err, engine.ErrAlertNotFound):
		fail(w, http.StatusNotFound, "not_found", err)
	case errors.Is(err, engine.ErrNotFiring):
		fail(w, http.StatusConflict, "conflict", err)
	case err != nil:
		failOr(w, http.StatusBadRequest, "bad_data", err)
	default:
		ok(w, toAlertJSON(al))
	}
}

// silenceJSON is a silence in the API.
type silenceJSON struct {
	ID        string    `json:"id"`
	Matchers  string    `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	Active    bool      `json:"active"`
}

func (a *api) silences(w http.ResponseWriter, r *http.Request) {
	if a.opts.Silences == nil {
		fail(w, http.StatusNotFound, "unavailable", errors.New("silences are not enabled"))
		return
	}
	now := a.opts.Now()
	switch r.Method {
	case http.MethodGet:
		out := []silenceJSON{}
		for _, s := range a.opts.Silences.List(now) {
			out = append(out, silenceJSON{ID: s.ID, Matchers: s.MatchersString(), StartsAt: s.StartsAt.UTC(), EndsAt: s.EndsAt.UTC(),
				CreatedBy: s.CreatedBy, Comment: s.Comment, Active: s.Active(now)})
		}
		ok(w, out)
	case http.MethodPost:
		var req struct {
			Matchers  string `json:"matchers"`
			StartsAt  string `json:"startsAt"`
			EndsAt    string `json:"endsAt"`
			Duration  string `json:"duration"`
			CreatedBy string `json:"createdBy"`
			Comment   string `json:"comment"`
		}
		if err := decode(r, &req); err != nil {
			fail(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		ms, err := engine.ParseMatchers(req.Matchers)
		if err != nil {
			fail(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		sil := engine.Silence{Matchers: ms, StartsAt: now, CreatedBy: req.CreatedBy, Comment: req.Comment}
		if req.StartsAt != "" {
			if sil.StartsAt, err = dsl.ParseTime(req.StartsAt); err != nil {
				fail(w, http.StatusBadRequest, "bad_data", fmt.Errorf("startsAt: %w", err))
				return
			}
		}
		switch {
		case req.EndsAt != "":
			if sil.EndsAt, err = dsl.ParseTime(req.EndsAt); err != nil {
				fail(w, http.StatusBadRequest, "bad_data", fmt.Errorf("endsAt: %w", err))
				return
			}
		case req.Duration != "":
			d, err := model.ParseDuration(req.Duration)
			if err != nil {
				fail(w, http.StatusBadRequest, "bad_data", fmt.Errorf("duration: %w; write e.g. 2h", err))
				return
			}
			sil.EndsAt = sil.StartsAt.Add(time.Duration(d))
		default:
			fail(w, http.StatusBadRequest, "bad_data", errors.New("give endsAt or duration (e.g. 2h)"))
			return
		}
		sil, err = a.opts.Silences.Add(r.Context(), sil)
		if err != nil {
			failOr(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		ok(w, map[string]string{"silenceID": sil.ID})
	}
}

func (a *api) deleteSilence(w http.ResponseWriter, r *http.Request) {
	if a.opts.Silences == nil {
		fail(w, http.StatusNotFound, "unavailable", errors.New("silences are not enabled"))
		return
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "api"
	}
	if err := a.opts.Silences.Expire(r.Context(), r.PathValue("id"), by); err != nil {
		failOr(w, http.StatusNotFound, "not_found", err)
		return
	}
	ok(w, nil)
}

// failOr answers err with code and typ, unless the audit store failed
// (engine.ErrStore): that is 503 unavailable, as the request was fine and a
// retry may succeed.
func failOr(w http.ResponseWriter, code int, typ string, err error) {
	if errors.Is(err, engine.ErrStore) {
		code, typ = http.StatusServiceUnavailable, "unavailable"
	}
	fail(w, code, typ, err)
}

// history serves the audit trail: ?rule=&fingerprint=&kind=&from=&to=&limit=
// and label filters as label.NAME=VALUE.
func (a *api) history(w http.ResponseWriter, r *http.Request) {
	if a.opts.History == nil {
		fail(w, http.StatusNotFound, "unavailable", errors.New("the audit trail is not enabled"))
		return
	}
	q := r.URL.Query()
	aq := engine.AuditQuery{Rule: q.Get("rule"), Fingerprint: q.Get("fingerprint"), Labels: map[string]string{}}
	for k, v := range q {
		if name, isLabel := strings.CutPrefix(k, "label."); isLabel && len(v) > 0 {
			aq.Labels[name] = v[0]
		}
	}
	for _, k := range append(q["kind"], q["state"]...) {
		for _, s := range strings.Split(k, ",") {
			if s != "" {
				aq.Kinds = append(aq.Kinds, engine.AuditKind(s))
			}
		}
	}
	var err error
	if v := q.Get("from"); v != "" {
		if aq.From, err = dsl.ParseTime(v); err != nil {
			fail(w, http.StatusBadRequest, "bad_data", fmt.Errorf("from: %w", err))
			return
		}
	}
	if v := q.Get("to"); v != "" {
		if aq.To, err = dsl.ParseTime(v); err != nil {
			fail(w, http.StatusBadRequest, "bad_data", fmt.Errorf("to: %w", err))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if aq.Limit, err = strconv.Atoi(v); err != nil || aq.Limit < 1 {
			fail(w, http.StatusBadRequest, "bad_data", errors.New("limit must be a positive integer"))
			return
		}
	}
	// A history read is as heavy as a query: it takes a query slot within
	// the query deadline.
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.QueryTimeout)
	defer cancel()
	release, err := a.slots.take(ctx)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "timeout", fmt.Errorf("history timed out after %s waiting for one of the %d query slots (limits.max_concurrent_queries)",
			a.opts.QueryTimeout, cap(a.slots)))
		return
	}
	defer release()
	recs, err := a.opts.History.History(ctx, aq)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "unavailable", err)
		return
	}
	if recs == nil {
		recs = []engine.AuditRecord{}
	}
	ok(w, recs)
}

// admin wraps a handler that changes state: with an admin token
// configured, it needs the token.
func (a *api) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.guard.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callwatch"`)
			fail(w, http.StatusUnauthorized, "unauthorized", errors.New("this endpoint needs the admin token: "+
				"Authorization: Bearer <token>, or "+AdminTokenHeader+": <token> when basic auth takes Authorization"))
			return
		}
		h(w, r)
	}
}
