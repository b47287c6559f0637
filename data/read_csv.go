package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// readCSV reads RFC 4180 CSV (or TSV with comma '\t') with a header row:
// quoted fields may hold commas, quotes ("") and newlines. Each row becomes a
// record keyed by the header; its Source line is the row's first line. A row
// with bad quoting or the wrong number of fields is skipped, not fatal.
func readCSV(r io.Reader, comma rune, emit emitFunc) error {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = -1 // checked here so the row can be skipped with a reason
	cr.ReuseRecord = true
	// TSV files in the wild are rarely quoted by the RFC rules (a lone "
	// inside a field is common), so only CSV is strict.
	cr.LazyQuotes = comma == '\t'

	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	cols := make([]string, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			h = "column_" + strconv.Itoa(i+1)
		}
		cols[i] = h
	}
	row := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		row++
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			it := item{src: Source{Line: pe.StartLine, Row: row}, err: &RecordError{Reason: ReasonMalformedCSV, Detail: pe.Err.Error()}}
			if err := emit(it); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("row %d: %w", row, err)
		}
		line, _ := cr.FieldPos(0)
		src := Source{Line: line, Row: row}
		if len(rec) != len(cols) {
			it := item{src: src, err: &RecordError{Reason: ReasonMalformedCSV, Detail: fmt.Sprintf("row has %d fields, the header has %d", len(rec), len(cols))}}
			if err := emit(it); err != nil {
				return err
			}
			continue
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c] = rec[i]
		}
		if err := emit(item{src: src, rec: m}); err != nil {
			return err
		}
	}
}
