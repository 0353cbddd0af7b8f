package rulefmt

import "strings"

// Severity is how serious an alert is: a rule's severity (or a threshold
// tier's), which becomes the alert's severity label. The four severities are
// ordered, and that one order decides which threshold tier is the higher,
// which severity a message about several alerts shows, and how the alert
// page sorts.
type Severity string

// The severities, least severe first.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityError    Severity = "error"
	SeverityCritical Severity = "critical"
)

// Severities returns the severities, least severe first.
func Severities() []Severity {
	return []Severity{SeverityInfo, SeverityWarning, SeverityError, SeverityCritical}
}

// Rank places s in the order of severities: 0 for info up to 3 for
// critical, and -1, below them all, for anything else (no severity, an
// unknown one). Severities are lower case; callers holding another case
// (message texts write them upper case) lower it first.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 0
	case SeverityWarning:
		return 1
	case SeverityError:
		return 2
	case SeverityCritical:
		return 3
	}
	return -1
}

// Valid reports whether s is one of the four severities.
func (s Severity) Valid() bool { return s.Rank() >= 0 }

// SeverityOfPriority maps the replaced service's priority (low, medium,
// high, critical) to its severity (info, warning, error, critical).
func SeverityOfPriority(priority string) (Severity, bool) {
	switch priority {
	case "low":
		return SeverityInfo, true
	case "medium":
		return SeverityWarning, true
	case "high":
		return SeverityError, true
	case "critical":
		return SeverityCritical, true
	}
	return "", false
}

// severityChoices lists the severities for messages: "info, warning, …".
func severityChoices() string {
	var b strings.Builder
	for i, s := range Severities() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
	}
	return b.String()
}
