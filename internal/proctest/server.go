package proctest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary returns the path of the first of names found on PATH or in
// /usr/bin, or notInstalled when none is.
func Binary(notInstalled error, names ...string) (string, error) {
	for _, name := range names {
		for _, p := range []string{name, "/usr/bin/" + name} {
			if path, err := exec.LookPath(p); err == nil {
				return path, nil
			}
		}
	}
	return "", notInstalled
}

// SkipOrFatal ends a test that could not start its server: skipped when the
// server is not installed (err is notInstalled), unless the environment
// variable CI is "true"; failed otherwise.
func SkipOrFatal(t testing.TB, err, notInstalled error) {
	t.Helper()
	if errors.Is(err, notInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// ForTest starts a server with start, its files in the test's temporary
// directory, and closes it when the test ends. When start fails it ends
// the test with SkipOrFatal.
func ForTest[S interface{ Close() }](t testing.TB, notInstalled error, start func(dir string) (S, error)) S {
	t.Helper()
	s, err := start(t.TempDir())
	if err != nil {
		SkipOrFatal(t, err, notInstalled)
	}
	t.Cleanup(s.Close)
	return s
}

// ConfigDir makes a server's directory, a new one under base whose name
// starts with prefix, and writes its configuration file, name, with text.
// It returns the directory and the file's path.
func ConfigDir(base, prefix, name, text string) (dir, file string, err error) {
	dir, err = os.MkdirTemp(base, prefix)
	if err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return "", "", err
	}
	return dir, file, nil
}

// Retry calls start up to three times until it succeeds: a free port found
// by listening may be taken by another process before the server binds it.
func Retry[T any](start func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := start()
		if err == nil || attempt == 3 {
			return v, err
		}
	}
}

// Proc is a server process started for a test: its output goes to a log
// file, it is waited for in the background, and the kernel kills it when
// the test binary dies.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// Start starts bin with args in dir, appending its standard output and
// error to logPath (created when missing).
func Start(dir, logPath, bin string, args ...string) (*Proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = SysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{name: filepath.Base(bin), cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// WaitReady calls ready every 50ms until it returns nil, and fails when the
// process exits first or timeout passes.
func (p *Proc) WaitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	last := errors.New("not polled")
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %w", p.name, p.waitErr)
		default:
		}
		if last = ready(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %s: %w", timeout, last)
}

// HTTPReady is a readiness check for WaitReady: a GET of url answers 200
// (Prometheus' and Alertmanager's /-/ready).
func HTTPReady(url string) func() error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", url, resp.Status)
		}
		return nil
	}
}

// Signal sends sig to the process (SIGSTOP and SIGCONT to hang a server).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill kills the process (SIGKILL) and waits until it has exited. Killing
// a process that has exited already is no error, so Kill may be called
// more than once.
func (p *Proc) Kill() error {
	err := p.cmd.Process.Kill()
	<-p.exited
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// LogTail returns the end (4000 bytes) of each of the files that has
// anything in it, under a "--- name ---" line: what a failure message shows
// of a server's logs.
func LogTail(files ...string) string {
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}
