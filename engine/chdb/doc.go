// Package chdb runs callwatch's ClickHouse SQL on embedded ClickHouse: chDB's
// libchdb.so, the ClickHouse engine (26.x) as a shared library, with its
// tables in a data directory on disk that survives restarts.
//
// Conn implements clickhouse.Conn and clickhouse.Execer, so the SQL
// compiler, clickhouse.Source and the audit store run on it unchanged: the
// same statements run on a ClickHouse server and embedded.
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
//     heredocs.
//   - Results. Queries return RowBinaryWithNamesAndTypes, decoded by the
//     column types in its header, so floats arrive bit for bit.
//   - Signals. Connecting installs ClickHouse's handlers of SIGSEGV, SIGBUS,
//     SIGFPE, SIGILL, SIGABRT, SIGTRAP and SIGSYS over Go's, after which a
//     nil dereference hangs the process instead of panicking. Open saves
//     those handlers (rt_sigaction) before connecting and restores them
//     right after.
package chdb
