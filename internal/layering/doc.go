// Package layering holds the test of the package layering the README's
// Layout section describes: which of callwatch's packages may import which.
// It has no code of its own; `go test ./internal/layering` reads the import
// lists of the tree's packages and fails on an import that breaks a rule.
package layering
