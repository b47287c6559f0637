package hostile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"os"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// LongLineBytes is the length of the single-line data entry: 100 MB, below the JSONL
// reader's 256 MiB line limit, so the line is read whole and must then be refused.
const LongLineBytes = 100 << 20

// Data returns hostile dataset files. Their extensions choose the reader (JSONL, JSON,
// CSV, Parquet, plain text, gzip), so each one meets the reader it attacks in every
// command that reads data.
func Data() ([]Entry, error) {
	out := []Entry{
		bytesEntry("data-empty", KindData, ".jsonl", `data-empty\.jsonl`, nil),
		mayPass(bytesEntry("data-invalid-utf8", KindData, ".jsonl", `UTF-8|line 1|:1\b`,
			[]byte(strings.Repeat("{\"question\":\"why\xff\xfe?\",\"answer\":\"bec\xc3\x28ause\"}\n", 20)))),
		mayPass(bytesEntry("data-invalid-utf8-text", KindData, ".txt", `UTF-8|:1\b`,
			bytes.Repeat([]byte("Once upon a \xff\xfe time \xc3\x28 there was.\n\n"), 200))),
		lazyEntry("data-deep-jsonl", KindData, ".jsonl", `line 1|:1\b|depth|nest`, func() ([]byte, error) {
			return []byte(strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + "\n"), nil
		}),
		lazyEntry("data-deep-json", KindData, ".json", `depth|nest|line 1|:1\b`, func() ([]byte, error) {
			return []byte(`{"train":` + strings.Repeat(`{"a":`, 1<<18) + "1" + strings.Repeat("}", 1<<18) + "}"), nil
		}),
		bytesEntry("data-wrong-types", KindData, ".jsonl", `question|answer|record|line`,
			[]byte(strings.Repeat(`{"question": 5, "answer": [1, {"x": null}]}`+"\n", 10))),
		bytesEntry("data-not-json", KindData, ".jsonl", `line 1|:1\b`, []byte("hello\nworld\n")),
		bytesEntry("data-nul-bytes", KindData, ".jsonl", `line 1|:1\b|NUL|invalid`, bytes.Repeat([]byte{0}, 4096)),
		// A quote opened and never closed: the CSV reader would take the rest of the
		// file as one field; a second file nests doubled quotes.
		lazyEntry("data-csv-quote-bomb", KindData, ".csv", `line|quote|record|field`, func() ([]byte, error) {
			return []byte("question,answer\n\"why" + strings.Repeat("\"\"", 4<<20) + ",x\n"), nil
		}),
		bytesEntry("data-csv-ragged", KindData, ".csv", `line|record|field`,
			[]byte("question,answer\n\"a\"b\",c\nd,e,f,g\n")),
		bytesEntry("data-gzip-corrupt", KindData, ".jsonl.gz", `gzip|data-gzip-corrupt`, []byte("\x1f\x8bnot really gzip")),
		bytesEntry("data-parquet-corrupt", KindData, ".parquet", `Parquet`, []byte("PAR1 this is no parquet footer PAR1")),
	}
	out = append(out, Entry{Name: "data-long-line", Kind: KindData, Ext: ".jsonl", Want: `line 1|:1\b`, Large: true,
		write: func(p string) error {
			// One JSON string that never ends: the whole 100 MB is one line.
			return writeRepeated(p, `{"question":"`, "abcdefghij", LongLineBytes/10, "")
		}})
	out = append(out, Entry{Name: "data-long-line-text", Kind: KindData, Ext: ".txt", Want: ``, MayPass: true, Large: true,
		write: func(p string) error { return writeRepeated(p, "", "The cat sat. ", LongLineBytes/13, "") }})
	out = append(out, lazyEntry("data-gzip-bomb", KindData, ".jsonl.gz", `no (valid )?(examples|records)|line|empty|data-gzip-bomb`, gzipBomb))
	wrong, err := parquetWrongSchema()
	if err != nil {
		return nil, err
	}
	out = append(out, bytesEntry("data-parquet-wrong-schema", KindData, ".parquet", `no (valid )?(examples|records)|field|column|shape|data-parquet-wrong-schema`, wrong))
	return out, nil
}

// writeRepeated writes head, n copies of unit and tail to p.
func writeRepeated(p, head, unit string, n int, tail string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(head)
	for range n {
		w.WriteString(unit)
	}
	w.WriteString(tail)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// gzipBomb is about 200 KB of gzip that expands about 1000× into blank lines.
func gzipBomb() ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	chunk := bytes.Repeat([]byte("\n"), 1<<20)
	for range 200 {
		if _, err := zw.Write(chunk); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parquetWrongSchema is a valid Parquet file whose columns no record shape reads.
func parquetWrongSchema() ([]byte, error) {
	type row struct {
		ID    int64   `parquet:"id"`
		Score float64 `parquet:"score"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf)
	if _, err := w.Write([]row{{1, 0.5}, {2, 0.25}, {3, 1}}); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
