package engine

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Silence holds back notifications of the alerts its matchers select
// between StartsAt and EndsAt, on every channel.
type Silence struct {
	ID        string            `json:"id"`
	Matchers  []*labels.Matcher `json:"-"`
	StartsAt  time.Time         `json:"startsAt"`
	EndsAt    time.Time         `json:"endsAt"`
	CreatedBy string            `json:"createdBy"`
	Comment   string            `json:"comment"`
}

// MatchersString formats the matchers as a selector: {a="b", c=~"d"}.
func (s Silence) MatchersString() string {
	parts := make([]string, len(s.Matchers))
	for i, m := range s.Matchers {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Active reports whether the silence applies at ts.
func (s Silence) Active(ts time.Time) bool { return !ts.Before(s.StartsAt) && ts.Before(s.EndsAt) }

// Matches reports whether the silence selects the label set.
func (s Silence) Matches(lset labels.Labels) bool {
	for _, m := range s.Matchers {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// ParseMatchers reads a selector such as {tenant_id="acme", alertname=~"Tenant.*"}.
func ParseMatchers(s string) ([]*labels.Matcher, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") {
		s = "{" + s + "}"
	}
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
	if err != nil {
		return nil, fmt.Errorf("matchers: %w; write e.g. {tenant_id=\"acme\", alertname=~\"Tenant.*\"}", err)
	}
	if len(ms) == 0 {
		return nil, errors.New("matchers: a silence needs at least one matcher")
	}
	return ms, nil
}

// Silences is the set of silences, kept in memory and in the audit trail.
type Silences struct {
	mu   sync.RWMutex
	m    map[string]Silence
	opts SilencesOptions
}

// SilencesOptions configure a Silences.
type SilencesOptions struct {
	// Audit records every silence and its expiry; nil records nothing.
	Audit Auditor
	// Now is the clock of those records (default time.Now).
	Now func() time.Time
}

// NewSilences returns an empty set.
func NewSilences(opts SilencesOptions) *Silences {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Silences{m: map[string]Silence{}, opts: opts}
}

// Add validates and stores a silence, assigning an ID when it has none.
func (s *Silences) Add(ctx context.Context, sil Silence) (Silence, error) {
	if len(sil.Matchers) == 0 {
		return Silence{}, errors.New("a silence needs at least one matcher")
	}
	if !sil.EndsAt.After(sil.StartsAt) {
		return Silence{}, errors.New("endsAt must be after startsAt")
	}
	if strings.TrimSpace(sil.CreatedBy) == "" {
		return Silence{}, errors.New("createdBy is required: say who silences")
	}
	if sil.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		sil.ID = hex.EncodeToString(b[:])
	}
	rec := AuditRecord{Time: s.opts.Now(), Kind: AuditSilence, SilenceID: sil.ID, Message: sil.MatchersString(),
		ActiveAt: sil.StartsAt, ResolvedAt: sil.EndsAt, By: sil.CreatedBy, Comment: sil.Comment}
	if s.opts.Audit != nil {
		if err := s.opts.Audit.Record(ctx, rec); err != nil {
			return Silence{}, fmt.Errorf("record silence: %w", err)
		}
	}
	s.mu.Lock()
	s.m[sil.ID] = sil
	s.mu.Unlock()
	return sil, nil
}

// Expire ends a silence now.
func (s *Silences) Expire(ctx context.Context, id, by string) error {
	s.mu.Lock()
	sil, ok := s.m[id]
	if ok {
		delete(s.m, id)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no silence with id %q", id)
	}
	if s.opts.Audit != nil {
		return s.opts.Audit.Record(ctx, AuditRecord{Time: s.opts.Now(), Kind: AuditUnsilence, SilenceID: id, Message: sil.MatchersString(), By: by})
	}
	return nil
}

// List returns the silences that have not ended at ts, by start time (and
// ID among those that start together).
func (s *Silences) List(ts time.Time) []Silence {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Silence, 0, len(s.m))
	for _, sil := range s.m {
		if sil.EndsAt.After(ts) {
			out = append(out, sil)
		}
	}
	slices.SortFunc(out, func(a, b Silence) int {
		return cmp.Or(a.StartsAt.Compare(b.StartsAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Match returns the active silence selecting lset at ts, if any: of
// several, the one that ends last (the lowest ID among those that end
// together), which says how long the alert stays silenced.
func (s *Silences) Match(lset labels.Labels, ts time.Time) (Silence, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best Silence
	found := false
	for _, sil := range s.m {
		if !sil.Active(ts) || !sil.Matches(lset) {
			continue
		}
		if !found || cmp.Or(sil.EndsAt.Compare(best.EndsAt), cmp.Compare(best.ID, sil.ID)) > 0 {
			best, found = sil, true
		}
	}
	return best, found
}

// Restore rebuilds the silences from audit records (any order).
func (s *Silences) Restore(recs []AuditRecord, now time.Time) {
	sort.Slice(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		switch r.Kind {
		case AuditSilence:
			ms, err := ParseMatchers(r.Message)
			if err != nil {
				continue
			}
			s.m[r.SilenceID] = Silence{ID: r.SilenceID, Matchers: ms, StartsAt: r.ActiveAt, EndsAt: r.ResolvedAt, CreatedBy: r.By, Comment: r.Comment}
		case AuditUnsilence:
			delete(s.m, r.SilenceID)
		}
	}
	for id, sil := range s.m {
		if !sil.EndsAt.After(now) {
			delete(s.m, id)
		}
	}
}
