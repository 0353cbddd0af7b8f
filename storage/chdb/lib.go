package chdb

import (
	"runtime"
	"unsafe"
)

// library is libchdb.so's C API (chdb.h), bound with purego: no cgo, so
// callwatch builds and runs without the library and loads it only when
// embedded storage is asked for.
type library struct {
	path string
	// connect is chdb_connect(argc, argv): it returns a chdb_connection*
	// (a pointer to the connection handle), NULL on failure.
	connect func(argc int32, argv unsafe.Pointer) unsafe.Pointer
	// closeConn is chdb_close_conn(chdb_connection*).
	closeConn func(conn unsafe.Pointer)
	// queryN is chdb_query_n(conn, query, query_len, format, format_len):
	// binary safe.
	queryN func(conn, query unsafe.Pointer, queryLen uintptr, format unsafe.Pointer, formatLen uintptr) unsafe.Pointer
	// resultBuffer, resultLength and resultError read a chdb_result;
	// resultError is NULL when the query succeeded.
	resultBuffer func(res unsafe.Pointer) unsafe.Pointer
	resultLength func(res unsafe.Pointer) uintptr
	resultError  func(res unsafe.Pointer) unsafe.Pointer
	// destroyResult is chdb_destroy_query_result.
	destroyResult func(res unsafe.Pointer)
}

// cString copies a NUL-terminated C string.
func cString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// cArgs is a C argv (NUL-terminated strings and a NULL-terminated array of
// pointers to them) in Go memory, pinned so that the library may read it.
type cArgs struct {
	strs [][]byte
	arr  []unsafe.Pointer
	pin  runtime.Pinner
}

func newCArgs(args ...string) *cArgs {
	a := &cArgs{}
	for _, s := range args {
		b := append([]byte(s), 0)
		a.pin.Pin(&b[0])
		a.strs = append(a.strs, b)
		a.arr = append(a.arr, unsafe.Pointer(&b[0]))
	}
	a.arr = append(a.arr, nil)
	a.pin.Pin(&a.arr[0])
	return a
}

// len is argc.
func (a *cArgs) len() int { return len(a.strs) }

// ptr is argv.
func (a *cArgs) ptr() unsafe.Pointer { return unsafe.Pointer(&a.arr[0]) }

// free unpins the memory; the library must not use it afterwards.
func (a *cArgs) free() { a.pin.Unpin() }
