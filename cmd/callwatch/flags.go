package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
)

// newFlags returns the flag set of the subcommand name. Its errors go to
// stderr, and so does its usage: the lines of usage, then the flags (the
// flag package's default usage when usage is empty).
func newFlags(name string, stderr io.Writer, usage ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if len(usage) > 0 {
		fs.Usage = func() {
			for _, l := range usage {
				fmt.Fprintln(stderr, l)
			}
			fs.PrintDefaults()
		}
	}
	return fs
}

// configFileFlag defines --config.file, the configuration file a
// subcommand reads (built-in defaults without it); what follows "configuration
// file" in its usage says what the subcommand reads of it (", for the
// schema"), or is empty.
func configFileFlag(fs *flag.FlagSet, what string) *string {
	return fs.String("config.file", "", "configuration file"+what+" (default: built-in defaults)")
}

// logLevelFlag defines --log.level, for newLogger.
func logLevelFlag(fs *flag.FlagSet) *string {
	return fs.String("log.level", "info", "log level: debug, info, warn, error")
}

// parseFlags parses a subcommand's arguments. help is true after -h or
// --help, which printed the usage (exit 0); a bad flag, already reported
// with the usage by the flag package, is a usageError (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, usageError{err.Error()}
	}
	return false, nil
}

// parseFileFlags parses the arguments of a subcommand that checks files
// and exits with promtool's codes. ok is false when the subcommand ends
// there with code: 0 after -h or --help, 2 after a bad flag or without a
// file (the usage printed).
func parseFileFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if help, err := parseFlags(fs, args); help {
		return 0, false
	} else if err != nil {
		return 2, false
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// parseTimeFlag reads --time: RFC 3339 or unix seconds; def when empty.
func parseTimeFlag(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	ts, err := dsl.ParseTime(s)
	if err != nil {
		return time.Time{}, usageError{"--time: " + err.Error()}
	}
	return ts, nil
}

// loggerAndConfig returns the logger of --log.level, writing text to
// stderr, and the configuration of --config.file: what serve and demo
// start from.
func loggerAndConfig(level, configFile string, stderr io.Writer) (*slog.Logger, *config.Config, error) {
	logger, err := newLogger(level, stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig(configFile)
	if err != nil {
		return nil, nil, err
	}
	return logger, cfg, nil
}

// newLogger returns the logger of --log.level, writing text to stderr.
func newLogger(level string, stderr io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{"--log.level: write debug, info, warn or error"}
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}
