// Package rulefmt owns the rule-file format: the YAML files of rules.d that
// hold rule groups, read as Prometheus' model/rulefmt reads them, plus
// callwatch's keys (severity or the baseline's priority, cooldown,
// max_alerts_per_day, notify, no_data_state, error_state, debug) and the
// noise controls (thresholds, recover_below/above, min_events,
// new_group_grace, repeat_interval, no_data_window) and evidence (what a
// firing alert's notification carries to explain it).
//
// LoadFiles and ParseRuleFile turn files into GroupSpec and RuleSpec values
// whose expressions are parsed, checked and planned by dsl. Nothing is
// evaluated here and nothing does I/O beyond reading the files: the engine
// package runs what this package describes.
//
// Every problem is a *FileError positioned at file:line:col, with the group
// and rule it is in; a position inside an expression is mapped back through
// YAML's quoting, escapes and block scalars to the column the user typed,
// and an unknown key gets a "did you mean" (ClosestKey). All problems of a
// load are returned together as Errors.
//
// Severity, with its one order (info < warning < error < critical), lives
// here because a rule file is where severities are written; the engine,
// the notifiers and the web page read that order from here.
package rulefmt
