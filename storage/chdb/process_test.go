//go:build linux && (amd64 || arm64)

package chdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// These tests need a process of their own: they re-execute the test binary,
// running only themselves, with childEnv naming the role to play.

// childResult is what a child printed and how it ended.
type childResult struct {
	lines []string
	// killed is set when the child did not exit within its time and was
	// killed.
	killed bool
	err    error
}

func (r childResult) has(prefix string) (string, bool) {
	for _, l := range r.lines {
		if strings.HasPrefix(l, prefix) {
			return l, true
		}
	}
	return "", false
}

// runChild runs the test named test in a child process playing role, on
// the data directory dir. The child has two minutes to print "connected"
// (loading the library and connecting take seconds on a busy machine), and
// then after more to exit; a child that takes longer is killed.
func runChild(t *testing.T, test, role, dir string, after time.Duration) childResult {
	t.Helper()
	lib := testLibrary(t)
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childDirEnv+"="+dir, LibraryEnv+"="+lib)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var res childResult
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for open := true; open; {
		select {
		case l, ok := <-lines:
			if !ok {
				open = false
				break
			}
			res.lines = append(res.lines, l)
			if l == "connected" {
				deadline.Reset(after)
			}
		case <-deadline.C:
			res.killed = true
			_ = cmd.Process.Kill()
			for l := range lines {
				res.lines = append(res.lines, l)
			}
			open = false
		}
	}
	res.err = cmd.Wait()
	return res
}

// TestGoPanicsStillWorkAfterConnecting connects in a child process, runs a
// query, and dereferences a nil pointer in a goroutine: the runtime must
// turn the SIGSEGV into a panic that recover() catches. The control case
// puts the library's handlers back after Open restored Go's, to show what
// the restore prevents: the process then hangs (ClickHouse's crash handler
// sleeps) and is killed.
func TestGoPanicsStillWorkAfterConnecting(t *testing.T) {
	switch childRole() {
	case "nil-dereference":
		childNilDereference(false)
		return
	case "nil-dereference-with-the-library-handlers":
		childNilDereference(true)
		return
	}
	testLibrary(t)
	t.Run("a nil dereference after connecting is a recovered runtime error", func(t *testing.T) {
		res := runChild(t, "TestGoPanicsStillWorkAfterConnecting", "nil-dereference", t.TempDir(), time.Minute)
		t.Logf("child output:\n%s", strings.Join(res.lines, "\n"))
		if res.killed {
			t.Fatal("the child hung after a nil dereference")
		}
		if l, ok := res.has("recovered: "); !ok || !strings.Contains(l, "nil pointer dereference") || !strings.Contains(l, "runtime.Error true") {
			t.Fatalf("the child did not recover a runtime error (exit: %v)", res.err)
		}
		if l, _ := res.has("restored: "); !strings.Contains(l, "segmentation fault") {
			t.Errorf("Open did not report restoring SIGSEGV: %q", l)
		}
	})
	t.Run("without the restore the same dereference is not recovered", func(t *testing.T) {
		res := runChild(t, "TestGoPanicsStillWorkAfterConnecting", "nil-dereference-with-the-library-handlers", t.TempDir(), 5*time.Second)
		t.Logf("child output (killed after 5s: %v, exit: %v):\n%s", res.killed, res.err, strings.Join(res.lines, "\n"))
		if _, ok := res.has("connected"); !ok {
			t.Fatal("the child did not connect")
		}
		if _, ok := res.has("recovered: "); ok {
			t.Fatal("the dereference was recovered with the library's handlers in place: the test proves nothing")
		}
	})
}

func childNilDereference(libraryHandlers bool) {
	c := childOpen()
	if _, err := c.Query(context.Background(), "SELECT 1"); err != nil {
		fmt.Println("query:", err)
		os.Exit(2)
	}
	fmt.Println("restored:", c.RestoredSignals())
	if libraryHandlers {
		for sig, act := range c.signals.replaced {
			if err := rtSigaction(sig, &act, nil); err != nil {
				fmt.Println("sigaction:", err)
				os.Exit(2)
			}
		}
	}
	done := make(chan any)
	go func() {
		defer func() { done <- recover() }()
		var p *[2]int
		fmt.Println(p[1])
	}()
	r := <-done
	_, isRuntime := r.(runtime.Error)
	fmt.Printf("recovered: %v (runtime.Error %v)\n", r, isRuntime)
	os.Exit(0)
}

// TestDataSurvivesARestart writes events in one process and reads them in
// another: after a clean close, and after an exit without one.
func TestDataSurvivesARestart(t *testing.T) {
	switch childRole() {
	case "write-and-close":
		childWrite(true)
		return
	case "write-and-exit":
		childWrite(false)
		return
	case "read":
		childRead()
		return
	}
	testLibrary(t)
	dir := t.TempDir()
	run := func(role, want string) {
		t.Helper()
		res := runChild(t, "TestDataSurvivesARestart", role, dir, time.Minute)
		if _, ok := res.has(want); !ok || res.killed || res.err != nil {
			t.Fatalf("%s: want %q; exit %v, killed %v, output:\n%s", role, want, res.err, res.killed, strings.Join(res.lines, "\n"))
		}
	}
	run("write-and-close", "wrote 3 events; closed")
	run("read", "read 3 events, latency 600")
	run("write-and-exit", "wrote 3 events")
	run("read", "read 6 events, latency 1200")
}

func childWrite(closeAfter bool) {
	c := childOpen()
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE DATABASE IF NOT EXISTS callwatch",
		clickhouse.EventsDDL("callwatch.events", dsl.DefaultSchema()),
	} {
		if err := c.Exec(ctx, sql); err != nil {
			fmt.Println("exec:", err)
			os.Exit(2)
		}
	}
	if err := c.Exec(ctx, "INSERT INTO callwatch.events (created_at, tenant_id, latency_ms) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)",
		int64(1764000000), "acme", int64(100), int64(1764000001), "acme", int64(200), int64(1764000002), "beta", int64(300)); err != nil {
		fmt.Println("insert:", err)
		os.Exit(2)
	}
	if !closeAfter {
		fmt.Println("wrote 3 events")
		os.Exit(0)
	}
	if err := c.Close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(2)
	}
	if _, err := c.Query(ctx, "SELECT 1"); !errors.Is(err, ErrClosed) {
		fmt.Println("query after close:", err)
		os.Exit(2)
	}
	fmt.Println("wrote 3 events; closed")
	os.Exit(0)
}

func childRead() {
	c := childOpen()
	rows, err := c.Query(context.Background(), "SELECT count(), toFloat64(sum(latency_ms)) FROM callwatch.events")
	if err != nil {
		fmt.Println("query:", err)
		os.Exit(2)
	}
	var n uint64
	var sum float64
	for rows.Next() {
		if err := rows.Scan(&n, &sum); err != nil {
			fmt.Println("scan:", err)
			os.Exit(2)
		}
	}
	fmt.Printf("read %d events, latency %v\n", n, sum)
	_ = c.Close()
	os.Exit(0)
}

// TestOneDataDirectoryAtATime shows the engine's limit: while a session is
// open on one data directory, another directory cannot be opened (the same
// one can); once every session is closed, another can.
func TestOneDataDirectoryAtATime(t *testing.T) {
	if childRole() == "two-directories" {
		childTwoDirectories()
		return
	}
	testLibrary(t)
	res := runChild(t, "TestOneDataDirectoryAtATime", "two-directories", t.TempDir(), time.Minute)
	if _, ok := res.has("ok"); !ok || res.err != nil {
		t.Fatalf("exit %v, killed %v, output:\n%s", res.err, res.killed, strings.Join(res.lines, "\n"))
	}
}

func childTwoDirectories() {
	a := childOpen()
	lib := os.Getenv(LibraryEnv)
	ctx := context.Background()
	fail := func(format string, args ...any) {
		fmt.Printf(format+"\n", args...)
		os.Exit(2)
	}
	same, err := Open(ctx, Options{Path: a.Path(), Library: lib})
	if err != nil {
		fail("a second session on the same directory: %v", err)
	}
	other, err := os.MkdirTemp("", "callwatch-chdb-other-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(other)
	if _, err := Open(ctx, Options{Path: other, Library: lib}); err == nil || !strings.Contains(err.Error(), "one data directory per process") {
		fail("another directory while one is open: %v", err)
	}
	_ = same.Close()
	_ = a.Close()
	b, err := Open(ctx, Options{Path: other, Library: lib})
	if err != nil {
		fail("another directory after closing: %v", err)
	}
	if err := b.Exec(ctx, "SELECT 1"); err != nil {
		fail("query: %v", err)
	}
	fmt.Println("ok")
	os.Exit(0)
}
