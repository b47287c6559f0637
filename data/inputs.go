package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Format names an input file format.
type Format string

// Input formats, chosen by file extension (after any .gz/.zst) unless
// ReadOptions.Format forces one.
const (
	FormatJSONL   Format = "jsonl"   // .jsonl, .ndjson
	FormatJSON    Format = "json"    // .json: an array, an object holding arrays, one object, or JSONL
	FormatCSV     Format = "csv"     // .csv
	FormatTSV     Format = "tsv"     // .tsv, .tab
	FormatParquet Format = "parquet" // .parquet, .pq
	FormatText    Format = "text"    // .txt, .text, .md, .markdown
)

// ParseFormat checks a format name given on the command line.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case "", FormatJSONL, FormatJSON, FormatCSV, FormatTSV, FormatParquet, FormatText:
		return f, nil
	case "txt", "md":
		return FormatText, nil
	case "ndjson":
		return FormatJSONL, nil
	}
	return "", fmt.Errorf("unknown format %q (want jsonl, json, csv, tsv, parquet or text)", s)
}

// formatOf maps a file name to its format and compression; ok is false for
// files that are not datasets.
func formatOf(name string) (Format, Compression, bool) {
	base, comp := splitCompression(name)
	switch strings.ToLower(filepath.Ext(base)) {
	case ".jsonl", ".ndjson":
		return FormatJSONL, comp, true
	case ".json":
		return FormatJSON, comp, true
	case ".csv":
		return FormatCSV, comp, true
	case ".tsv", ".tab":
		return FormatTSV, comp, true
	case ".parquet", ".pq":
		return FormatParquet, comp, true
	case ".txt", ".text", ".md", ".markdown":
		return FormatText, comp, true
	}
	return "", comp, false
}

// inputFile is one file to read: the OS path, the name recorded in outputs
// (the path as the user named it, slash-separated) and its format.
type inputFile struct {
	path        string
	name        string
	size        int64
	format      Format
	compression Compression
}

// expandInputs turns paths, directories and globs into a sorted list of
// files. Sorting the whole list (not each argument) makes the result
// independent of argument order and of directory listing order. exclude is
// a directory never descended into (the output directory).
func expandInputs(args []string, forced Format, exclude string) ([]inputFile, error) {
	if len(args) == 0 {
		return nil, errors.New("no inputs given")
	}
	if exclude != "" {
		if abs, err := filepath.Abs(exclude); err == nil {
			exclude = abs
		}
	}
	seen := map[string]bool{}
	var files []inputFile
	add := func(p string, explicit bool) error {
		name := filepath.ToSlash(filepath.Clean(p))
		if seen[name] {
			return nil
		}
		f, comp, ok := formatOf(p)
		if forced != "" {
			f, ok = forced, true
		}
		if !ok {
			if explicit {
				return fmt.Errorf("input %s: unknown file type (want .jsonl, .json, .csv, .tsv, .parquet, .txt or .md, optionally .gz/.zst; or set the format)", p)
			}
			return nil // other files in a directory (licences, scripts) are not data
		}
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("input %s: %w", p, err)
		}
		seen[name] = true
		files = append(files, inputFile{path: p, name: name, size: st.Size(), format: f, compression: comp})
		return nil
	}
	walk := func(root string) error {
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("input %s: %w", p, err)
			}
			if d.IsDir() {
				if p != root && (strings.HasPrefix(d.Name(), ".") || sameDir(p, exclude)) {
					return filepath.SkipDir
				}
				return nil
			}
			if skipInWalk(d.Name()) {
				return nil
			}
			return add(p, false)
		})
	}
	for _, arg := range args {
		st, err := os.Stat(arg)
		switch {
		case err == nil && st.IsDir():
			if err := walk(arg); err != nil {
				return nil, err
			}
		case err == nil:
			if err := add(arg, true); err != nil {
				return nil, err
			}
		case hasGlobMeta(arg):
			matches, gerr := glob(arg)
			if gerr != nil {
				return nil, fmt.Errorf("input %s: %w", arg, gerr)
			}
			if len(matches) == 0 {
				return nil, fmt.Errorf("input %s: the pattern matches no files", arg)
			}
			for _, m := range matches {
				if mst, err := os.Stat(m); err == nil && mst.IsDir() {
					err = walk(m)
					if err != nil {
						return nil, err
					}
					continue
				}
				if err := add(m, false); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("input %s: %w", arg, err)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no data files found in %s", strings.Join(args, ", "))
	}
	slices.SortFunc(files, func(a, b inputFile) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// skipInWalk leaves out files a dataset directory carries beside its data:
// hidden files and Hugging Face dataset cards (README.md), which would
// otherwise be read as pre-training text. Naming such a file explicitly
// still reads it.
func skipInWalk(name string) bool {
	upper := strings.ToUpper(name)
	return strings.HasPrefix(name, ".") || strings.HasPrefix(upper, "README") ||
		strings.HasPrefix(upper, "LICENSE") || strings.HasPrefix(upper, "LICENCE") ||
		strings.HasPrefix(upper, "CHANGELOG")
}

func sameDir(p, abs string) bool {
	if abs == "" {
		return false
	}
	pa, err := filepath.Abs(p)
	return err == nil && pa == abs
}

func hasGlobMeta(p string) bool { return strings.ContainsAny(p, "*?[") }

// glob extends filepath.Glob with "**", which matches any number of
// directories (data/**/*.jsonl), as users of shell globstar expect.
func glob(pattern string) ([]string, error) {
	if !strings.Contains(pattern, "**") {
		matches, err := filepath.Glob(pattern)
		// As in a shell, * does not match a leading dot.
		if !strings.HasPrefix(filepath.Base(pattern), ".") {
			matches = slices.DeleteFunc(matches, func(m string) bool { return strings.HasPrefix(filepath.Base(m), ".") })
		}
		return matches, err
	}
	pattern = filepath.ToSlash(pattern)
	segs := strings.Split(pattern, "/")
	i := 0
	for i < len(segs) && !hasGlobMeta(segs[i]) {
		i++
	}
	root := strings.Join(segs[:i], "/")
	if root == "" {
		root = "."
		if strings.HasPrefix(pattern, "/") {
			root = "/"
		}
	}
	rest := segs[i:]
	var out []string
	err := filepath.WalkDir(filepath.FromSlash(root), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != filepath.FromSlash(root) && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(filepath.FromSlash(root), p)
		if err != nil {
			return err
		}
		ok, err := matchSegments(rest, strings.Split(filepath.ToSlash(rel), "/"))
		if err != nil {
			return err
		}
		if ok {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// matchSegments matches path segments against pattern segments, "**"
// standing for zero or more segments.
func matchSegments(pat, segs []string) (bool, error) {
	if len(pat) == 0 {
		return len(segs) == 0, nil
	}
	if pat[0] == "**" {
		for k := 0; k <= len(segs); k++ {
			ok, err := matchSegments(pat[1:], segs[k:])
			if ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	}
	if len(segs) == 0 {
		return false, nil
	}
	ok, err := path.Match(pat[0], segs[0])
	if !ok || err != nil {
		return false, err
	}
	return matchSegments(pat[1:], segs[1:])
}
