package main

import (
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// preparedOnlyExts are the extensions of formats only `ecotune prepare` reads: train
// would otherwise tokenize a Parquet footer or a gzip stream as if it were prose.
var preparedOnlyExts = []string{".json", ".csv", ".tsv", ".parquet", ".gz", ".zst"}

// dataFormatExt returns the extension of path when it names a format train does not
// read directly, else "".
func dataFormatExt(path string) string {
	ext := strings.ToLower(filepath.Ext(path))
	for _, e := range preparedOnlyExts {
		if ext == e {
			return ext
		}
	}
	return ""
}

// firstInvalidUTF8 is the offset of the first byte of b that is not valid UTF-8, or
// len(b).
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}
