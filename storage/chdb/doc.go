// Package chdb runs callwatch's ClickHouse SQL on embedded ClickHouse: chDB's
// libchdb.so, the ClickHouse engine (26.x) as a shared library, with its
// tables in a data directory on disk that survives restarts.
//
// Conn implements clickhouse.Conn and clickhouse.Execer, so the SQL
// compiler, clickhouse.Source and the stores of storage/chstore run on it
// unchanged: the same statements run on a ClickHouse server and embedded.
// It is a database driver, not evaluation, so it lives under storage/.
//
// The library is loaded at run time with purego (dlopen, no cgo), only when
// Open is called: a callwatch binary built without it runs everything else,
// and Open without it fails with ErrNoLibrary and the command that fetches
// it (`make chdb`, which runs `npm pack` of the pinned Package into
// .cache/chdb/). The library is 559 MB, glibc only, and linux/amd64.
//
// Three things differ from a server connection and are handled here:
//
//   - Placeholders. The library has no client-side binding; Bind writes
//     each ? argument as an escaped literal, skipping quotes, comments and
//     heredocs. Floats are written so that INSERT … VALUES stores them
//     exactly too, and the session's max_query_size is raised to 64 MiB,
//     since every value is part of the statement.
//   - Results. Queries return RowBinaryWithNamesAndTypes, decoded by the
//     column types in its header, so floats arrive bit for bit.
//   - Signals. Connecting installs ClickHouse's handlers of SIGSEGV, SIGBUS,
//     SIGFPE, SIGILL, SIGABRT, SIGTRAP and SIGSYS over Go's (and of
//     SIGTSTP), after which a nil dereference hangs the process instead of
//     panicking. Open saves those handlers (rt_sigaction) before connecting
//     and restores them right after.
//
// Limits of the engine, measured with chDB 26.5.3: the process serves one
// data directory at a time (more sessions on the same one are fine; another
// opens only after every session is closed), a session runs one statement
// at a time (Conn serializes them), and DROP … SYNC of a table the session
// has read did not return (for minutes), so drop without SYNC.
package chdb
