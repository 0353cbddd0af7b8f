package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/callwatch/callwatch/rulefmt"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	GroupOptions
	// RuleFiles are globs of rule files.
	RuleFiles []string
	// Channels are the configured notifier names rules may route to.
	Channels []string
	// RestoreWindow caps how far back the engine replays evaluations at
	// start to restore for/keep_firing_for state (default 2h; 0 uses the default,
	// negative disables).
	RestoreWindow time.Duration
	// WatchInterval is how often rule files are checked for changes (default 5s).
	WatchInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AuditReader, when set, restores cooldowns and acknowledgements at start.
	AuditReader AuditReader
	// Builtin are groups callwatch adds to the rule files' (DatasourceDown).
	Builtin []*Group
	// Replica names this instance in the audit rows of its operators'
	// actions, which SyncActions applies on the other replicas.
	Replica string
	// OnTakeOver, when set, runs after this replica took over a group
	// another one evaluated (with GroupOptions.Owns): the place to re-read
	// what the channels were told.
	OnTakeOver func(ctx context.Context)
}

// Manager loads rule files, runs their groups and reloads them, all or
// nothing.
type Manager struct {
	opts ManagerOptions

	mu       sync.RWMutex
	groups   []*Group
	cancel   context.CancelFunc
	running  sync.WaitGroup
	runCtx   context.Context
	filesSum [32]byte
	restored bool

	// syncedTo is the time of the last SyncActions.
	syncMu   sync.Mutex
	syncedTo time.Time

	// sharedRecs are the audit trail's last transitions by group and
	// rule, read at sharedAt, for SharedAlerts.
	// sharedAcks are the last acknowledgement of each fingerprint.
	sharedMu   sync.Mutex
	sharedAt   time.Time
	sharedRecs map[string][]AuditRecord
	sharedAcks map[string]AuditRecord
}

// NewManager returns a Manager; call Load (or Run) to start.
func NewManager(opts ManagerOptions) *Manager {
	opts.applyDefaults()
	if opts.RestoreWindow == 0 {
		opts.RestoreWindow = 2 * time.Hour
	}
	if opts.WatchInterval <= 0 {
		opts.WatchInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{opts: opts}
	for _, g := range opts.Builtin {
		g.takeOver = m.takeOver
	}
	return m
}

// Groups returns the running groups, sorted by file and name.
func (m *Manager) Groups() []*Group {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]*Group(nil), m.groups...)
}

// ReloadOptions tune one reload.
type ReloadOptions struct {
	// Force applies rule files that look like an accident: files that hold
	// no rule at all while rules are running, or a rule file emptied (0
	// bytes or only blanks) that held rules. Without it such a reload is
	// refused with an error matching ErrReloadRefused and nothing changes.
	// The file watcher and SIGHUP never force.
	Force bool
}

// ErrReloadRefused is matched (errors.Is) by the error of a reload refused
// because it would remove rules by what looks like an accident (see
// ReloadOptions.Force). The running rules keep running.
var ErrReloadRefused = errors.New("reload refused")

// refusedError is the error of a refused reload: its message says why and
// how to force it.
type refusedError struct{ msg string }

func (e *refusedError) Error() string        { return e.msg }
func (e *refusedError) Is(target error) bool { return target == ErrReloadRefused }

// RemovedByReason is the reason of the audit rows of alerts resolved because
// a reload removed their rule (or changed its name, labels or severity, or
// its group's name).
const RemovedByReason = "rule removed by reload"

// Load loads the rule files and, if every file is valid, replaces the
// running groups; otherwise the running groups stay and the error says why.
// It never forces (see Reload).
func (m *Manager) Load(ctx context.Context) error { return m.Reload(ctx, ReloadOptions{}) }

// Reload loads the rule files and, if every file is valid, replaces the
// running groups; otherwise the running groups stay and the error says why.
// Alert state is kept for rules with the same group, name and labels. The
// pending and firing alerts of rules the new files no longer hold are
// resolved, as Prometheus does for removed rules: each is written to the
// audit trail as resolved (reason RemovedByReason) and the firing ones are
// sent resolved. A reload that would remove every rule, or empty a rule file
// that held rules, is refused unless opts.Force is set.
func (m *Manager) Reload(ctx context.Context, opts ReloadOptions) error {
	specs, err := rulefmt.LoadFiles(m.opts.RuleFiles, rulefmt.LoadOptions{Schema: m.opts.Schema, Channels: m.opts.Channels, Limits: m.opts.Limits})
	if err != nil {
		m.opts.Metrics.reloaded(false, m.opts.Now())
		return err
	}
	groups := make([]*Group, 0, len(specs))
	for _, s := range specs {
		g := NewGroup(s, m.opts.GroupOptions)
		g.takeOver = m.takeOver
		groups = append(groups, g)
		for _, r := range s.Rules {
			for _, w := range r.Warnings {
				m.opts.Logger.Warn("rule can never fire or record anything", "err", w)
			}
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].File() != groups[j].File() {
			return groups[i].File() < groups[j].File()
		}
		return groups[i].Name() < groups[j].Name()
	})
	groups = append(groups, m.opts.Builtin...)

	m.mu.Lock()
	if !opts.Force {
		if err := m.refuseAccident(specs); err != nil {
			m.mu.Unlock()
			m.opts.Metrics.reloaded(false, m.opts.Now())
			return err
		}
	}
	// Stop the running groups first, so that none changes its alerts
	// while they are copied or resolved.
	if m.cancel != nil {
		m.cancel()
		m.running.Wait()
		m.cancel = nil
	}
	old := map[string]*Group{}
	for _, g := range m.groups {
		old[g.Name()] = g
	}
	for _, g := range groups {
		if o := old[g.Name()]; o != nil && o != g {
			g.copyState(o)
		}
	}
	removed := m.resolveRemoved(groups)
	if !m.restored {
		m.loadEpisodes(ctx, groups)
		m.restore(ctx, groups)
		for _, g := range groups {
			g.auditReplay = false
		}
		m.restoreFromAudit(ctx, groups)
		m.restored = true
	}
	m.opts.Metrics.groupsLoaded(groups, m.groups)
	m.groups = groups
	if c := m.opts.Coalescer; c != nil {
		c.SetGroups(groups)
	}
	m.filesSum = m.sumFiles()
	m.opts.Metrics.reloaded(true, m.opts.Now())
	if m.runCtx != nil {
		m.startLocked()
	}
	m.mu.Unlock()
	// Audit and notify outside the lock: the API keeps reading the groups
	// while the audit table is written.
	for _, r := range removed {
		r.send(ctx)
	}
	if opts.Force && len(removed) > 0 {
		m.opts.Logger.Warn("forced reload removed rules with active alerts", "rules", len(removed))
	}
	return nil
}

// refuseAccident returns an error when the new rule files would remove
// rules by what looks like an accident: no rule at all while rules run
// (every file truncated, a glob that no longer matches), or a rule file
// that held rules and is now empty (a truncation: 0 bytes or only blanks).
// A deleted file is deliberate; its rules are removed. m.mu is held.
func (m *Manager) refuseAccident(specs []*rulefmt.GroupSpec) error {
	running := map[string]int{} // rule file → rules running from it
	total := 0
	for _, g := range m.groups {
		if m.builtin(g) {
			continue
		}
		running[g.File()] += len(g.rules)
		total += len(g.rules)
	}
	if total == 0 {
		return nil
	}
	newRules := 0
	files := map[string]bool{}
	for _, s := range specs {
		newRules += len(s.Rules)
		files[s.File] = true
	}
	if newRules == 0 {
		return &refusedError{fmt.Sprintf("the new rule files contain no rules; the running %d rules keep running; "+
			"to remove every rule, reload with force (POST /-/reload?force=true)", total)}
	}
	var emptied []string
	for f, n := range running {
		if n == 0 || files[f] {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue // deleted (or unreadable, which rulefmt.LoadFiles would have reported)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			emptied = append(emptied, fmt.Sprintf("%s (held %d rules)", f, n))
		}
	}
	if len(emptied) > 0 {
		sort.Strings(emptied)
		return &refusedError{fmt.Sprintf("rule file %s is empty; the running rules keep running; "+
			"to remove its rules, delete the file or reload with force (POST /-/reload?force=true)", strings.Join(emptied, ", "))}
	}
	return nil
}

// builtin reports whether g is one of the groups callwatch adds.
func (m *Manager) builtin(g *Group) bool {
	return slices.Contains(m.opts.Builtin, g)
}

// removedRule is an alerting rule a reload removed, with its alerts just
// resolved.
type removedRule struct {
	group    *Group
	rule     *AlertingRule
	resolved []Alert // every alert that was pending or firing, for the audit trail
	due      []Alert // the firing ones, to send resolved
	at       time.Time
}

// resolveRemoved resolves, at now, the pending and firing alerts of the old
// groups' alerting rules that the new groups do not take over: a removed
// group or rule, or one whose identity (group name, rule name, labels,
// severity) changed. The old groups are stopped; m.mu is held.
func (m *Manager) resolveRemoved(groups []*Group) []removedRule {
	kept := map[string]bool{}
	for _, g := range groups {
		for _, r := range g.rules {
			if ar, ok := r.(*AlertingRule); ok {
				kept[g.Name()+"\x00"+ruleKey(ar.spec)] = true
			}
		}
	}
	now := m.opts.Now()
	var out []removedRule
	for _, g := range m.groups {
		for _, r := range g.rules {
			ar, ok := r.(*AlertingRule)
			if !ok || kept[g.Name()+"\x00"+ruleKey(ar.spec)] {
				continue
			}
			resolved, due := ar.resolveRemoved(now, g.opts.ResendDelay, g.interval)
			if len(resolved) > 0 {
				out = append(out, removedRule{group: g, rule: ar, resolved: resolved, due: due, at: now})
			}
		}
	}
	return out
}

// send writes the resolved alerts of a removed rule to the audit trail,
// then sends the firing ones resolved (audited before sent, as every
// transition).
func (r removedRule) send(ctx context.Context) {
	g := r.group
	g.opts.Logger.Info("rule removed by reload; its alerts are resolved", "group", g.Name(), "rule", r.rule.Name(),
		"alerts", len(r.resolved), "sent_resolved", len(r.due))
	if g.opts.Audit != nil {
		recs := make([]AuditRecord, len(r.resolved))
		for i, a := range r.resolved {
			recs[i] = NewAuditRecord(AuditResolved, r.at, g.Name(), r.rule.spec, a)
			recs[i].Reason = RemovedByReason
		}
		if err := g.opts.Audit.Record(ctx, recs...); err != nil {
			g.opts.Logger.Error("writing the alerts of a removed rule to the audit trail failed", "group", g.Name(), "rule", r.rule.Name(), "err", err)
		}
	}
	if len(r.due) > 0 && g.opts.Notifier != nil {
		g.opts.Notifier.Notify(ctx, Notification{Group: g.Name(), Rule: r.rule.spec, Time: r.at, Alerts: r.due})
	}
}

// restore replays the recent evaluations of groups that hold state over
// time (for, keep_firing_for), without notifying, so a restart neither
// re-waits for nor loses a keep-firing window.
func (m *Manager) restore(ctx context.Context, groups []*Group) {
	now := m.opts.Now()
	for _, g := range groups {
		if !g.owns() {
			g.release() // another replica evaluates it; taken over if that changes
			continue
		}
		window := m.replayWindow(g)
		if window == 0 {
			continue
		}
		last := g.EvalTimestamp(now)
		n := g.replay(ctx, last.Add(-window), last)
		m.opts.Logger.Info("restored rule group state", "group", g.Name(), "evaluations", n, "window", window)
	}
}

// Run evaluates the groups until ctx ends, reloading when rule files change.
// Call Load first.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.runCtx = ctx
	m.startLocked()
	m.mu.Unlock()
	t := time.NewTicker(m.opts.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			if m.cancel != nil {
				m.cancel()
			}
			m.mu.Unlock()
			m.running.Wait()
			return
		case <-t.C:
			m.mu.RLock()
			changed := m.sumFiles() != m.filesSum
			m.mu.RUnlock()
			if changed {
				if err := m.Load(ctx); err != nil {
					m.opts.Logger.Error("reloading rules failed; the previous rules keep running", "err", err)
					m.mu.Lock()
					m.filesSum = m.sumFiles() // report a broken file once, not every tick
					m.mu.Unlock()
				} else {
					m.opts.Logger.Info("rules reloaded after a rule file changed")
				}
			}
		}
	}
}

func (m *Manager) startLocked() {
	ctx, cancel := context.WithCancel(m.runCtx)
	m.cancel = cancel
	for _, g := range m.groups {
		m.running.Go(func() {
			g.run(ctx, m.opts.Now)
		})
	}
}

// sumFiles hashes the names and contents of the files the globs match.
func (m *Manager) sumFiles() [32]byte {
	h := sha256.New()
	var files []string
	for _, g := range m.opts.RuleFiles {
		f, _ := filepath.Glob(g)
		files = append(files, f...)
	}
	sort.Strings(files)
	for _, f := range files {
		h.Write([]byte(f))
		data, _ := os.ReadFile(f)
		h.Write(data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
