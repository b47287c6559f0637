package data

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// parquetBatch is how many rows are read at a time: enough to amortise the
// reader's per-call cost, few enough that a batch of long chats stays small.
const parquetBatch = 128

// readParquet reads a Parquet file (the Hugging Face datasets format) row
// by row into generic records: nested list and struct columns such as
// messages: list<struct<role, content>> become []any of map[string]any.
// progress is told the fraction of rows read.
func readParquet(ra io.ReaderAt, size int64, progress func(done, total int64), emit emitFunc) (err error) {
	// parquet-go panics on some malformed schemas (a LIST group without a
	// repeated child); a bad file must be an error naming it, not a crash.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a readable Parquet file: %v", p)
		}
	}()
	f, err := parquet.OpenFile(ra, size)
	if err != nil {
		return fmt.Errorf("not a readable Parquet file: %w", err)
	}
	schema := f.Schema()
	r := parquet.NewReader(f)
	defer r.Close()
	total := r.NumRows()
	rows := make([]parquet.Row, parquetBatch)
	row := 0
	for {
		n, rerr := r.ReadRows(rows)
		for i := range n {
			row++
			it := item{src: Source{Row: row}}
			m, cerr := reconstructRow(schema, rows[i])
			if cerr != nil {
				it.err = &RecordError{Reason: ReasonMalformedRow, Detail: cerr.Error()}
			} else {
				it.rec = m
			}
			if err := emit(it); err != nil {
				return err
			}
		}
		if progress != nil && n > 0 {
			progress(int64(row), total)
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("row %d: %w", row+1, rerr)
		}
	}
}

// reconstructRow turns one row into a map, with byte arrays that are valid
// UTF-8 as strings (pyarrow writes string columns as annotated binary, but
// older writers leave the annotation off).
func reconstructRow(schema *parquet.Schema, row parquet.Row) (m map[string]any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	m = map[string]any{}
	if err := schema.Reconstruct(&m, row); err != nil {
		return nil, err
	}
	for k, v := range m {
		m[k] = textify(v)
	}
	return m, nil
}

func textify(v any) any {
	switch t := v.(type) {
	case []byte:
		if utf8.Valid(t) {
			return string(t)
		}
	case []any:
		for i := range t {
			t[i] = textify(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = textify(t[k])
		}
	}
	return v
}
