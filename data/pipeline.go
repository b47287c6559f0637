package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"
)

// item is one record on its way through the pipeline. Readers fill src and
// one of raw, rec or text (or err); workers fill ex or err and, for
// Prepare, the rendered output.
type item struct {
	file int
	src  Source
	raw  []byte         // JSON to decode (JSONL line, array element)
	rec  map[string]any // already decoded (CSV, Parquet, JSON object)
	text string         // plain-text chunk
	err  error          // the record is skipped for this reason

	ex Example

	// Set by Prepare's worker stage.
	exact, folded uint64
	split         Split
	line          []byte   // the output JSON line, newline-terminated
	aug           [][]byte // augmented variants' lines (train only)
	tokens        int
}

type emitFunc func(item) error

// chunk is the unit of work handed to workers: consecutive records of the
// input, in order, whose raw bytes share one arena allocation.
type chunk struct {
	seq   int
	items []item
	arena []byte
	out   []byte // the items' rendered lines (item.line, item.aug point into it)
}

// reset empties a consumed chunk for reuse. Chunks are recycled because
// allocating and zeroing their item arrays (a few hundred bytes per item)
// and arenas for every MiB of input showed up in profiles, and so did
// growing the item slice.
func (c *chunk) reset() {
	clear(c.items) // drop references to the consumed records' strings
	c.items, c.arena, c.out = c.items[:0], c.arena[:0], c.out[:0]
}

// Chunk limits: ~1 MiB of JSON keeps per-chunk overhead low while the
// number of chunks in flight (maxInFlight) bounds memory.
const (
	chunkBytes = 1 << 20
	chunkItems = 2048
)

// fileStat is what the reader learns about one input file.
type fileStat struct {
	sha256  string
	bytes   int64
	records int
}

// pipeline reads the inputs on one goroutine, converts records on
// Workers goroutines, and hands them back in input order to consume, so
// output is deterministic whatever the scheduling.
type pipeline struct {
	opts    *ReadOptions
	conv    *converter
	files   []inputFile
	work    func(it *item, out *[]byte) // on worker goroutines, for records that converted; may append it.line to out
	consume func(*item) error
	exact   bool // compute item.exact (exact de-duplication needs it)

	stats    []fileStat
	total    int64
	readDone int64 // bytes of files finished
	lastRep  int64
}

func newPipeline(opts *ReadOptions, files []inputFile) *pipeline {
	p := &pipeline{opts: opts, conv: newConverter(opts), files: files, stats: make([]fileStat, len(files))}
	for _, f := range files {
		p.total += f.size
	}
	return p
}

func (p *pipeline) workers() int {
	if p.opts.Workers > 0 {
		return p.opts.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// run reads every file and calls consume for every record in order. It
// returns the first error: a file that cannot be read, a consume error, or
// the context's.
func (p *pipeline) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nw := p.workers()
	maxInFlight := 4 * nw
	sem := make(chan struct{}, maxInFlight)
	work := make(chan *chunk, nw)
	results := make(chan *chunk, maxInFlight)
	free := make(chan *chunk, maxInFlight) // consumed chunks, for the reader to refill

	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(work)
		readErr = p.readAll(ctx, sem, work, free)
	}()

	var wg sync.WaitGroup
	for range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				for i := range c.items {
					p.process(&c.items[i], &c.out)
				}
				results <- c
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var consumeErr error
	pending := map[int]*chunk{}
	next := 0
	for c := range results {
		pending[c.seq] = c
		for {
			c, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if consumeErr == nil {
				for i := range c.items {
					it := &c.items[i]
					p.stats[it.file].records++
					if consumeErr = p.consume(it); consumeErr != nil {
						cancel()
						break
					}
				}
			}
			c.reset()
			select {
			case free <- c:
			default:
			}
			<-sem
		}
	}
	<-readDone
	switch {
	case consumeErr != nil:
		return consumeErr
	case readErr != nil:
		return readErr
	}
	return ctx.Err()
}

// process converts one record on a worker goroutine. A panic in caller code
// (a template or tokenizer) skips the record rather than killing the run.
func (p *pipeline) process(it *item, out *[]byte) {
	defer func() {
		if r := recover(); r != nil {
			it.err = fmt.Errorf("panic: %v", r)
		}
		it.raw, it.rec, it.text = nil, nil, ""
	}()
	if it.err != nil {
		return
	}
	switch {
	case it.raw != nil:
		rec, err := decodeRecord(it.raw)
		if err != nil {
			it.err = err
			return
		}
		it.ex, it.err = p.conv.toExample(rec, it.src)
	case it.rec != nil:
		it.ex, it.err = p.conv.toExample(it.rec, it.src)
	default:
		t := CleanText(it.text, p.opts.KeepHTML)
		if t == "" {
			it.err = &RecordError{Reason: ReasonEmptyField, Field: "text"}
			return
		}
		it.ex = Example{Source: it.src, Shape: ShapeText, Text: t}
	}
	if it.err != nil {
		return
	}
	it.folded = foldedHash(&it.ex)
	if p.exact {
		it.exact = exactHash(&it.ex)
	}
	if it.ex.ID == "" {
		// A content hash, not a position, so ids survive reordering inputs.
		it.ex.ID = hex64(it.folded)
	}
	if p.work != nil {
		p.work(it, out)
	}
}

// readAll reads the files in order, batching records into chunks.
func (p *pipeline) readAll(ctx context.Context, sem chan struct{}, work chan<- *chunk, free <-chan *chunk) error {
	seq := 0
	next := func() *chunk {
		select {
		case c := <-free:
			return c
		default:
			// Sized for the usual case (lines a little longer than their
			// records) so the line buffer rarely grows.
			return &chunk{out: make([]byte, 0, 2*chunkBytes)}
		}
	}
	cur := next()
	send := func() error {
		if len(cur.items) == 0 {
			return nil
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		cur.seq = seq
		seq++
		work <- cur
		cur = next()
		return nil
	}
	for i := range p.files {
		f := &p.files[i]
		emit := func(it item) error {
			it.file = i
			it.src.File = f.name
			if it.raw != nil {
				if len(cur.arena)+len(it.raw) > cap(cur.arena) {
					if err := send(); err != nil {
						return err
					}
					if len(cur.arena)+len(it.raw) > cap(cur.arena) {
						cur.arena = make([]byte, 0, max(chunkBytes, len(it.raw)))
					}
				}
				n := len(cur.arena)
				cur.arena = append(cur.arena, it.raw...)
				it.raw = cur.arena[n:len(cur.arena):len(cur.arena)]
			}
			cur.items = append(cur.items, it)
			if len(cur.items) >= chunkItems || len(cur.arena) >= chunkBytes {
				return send()
			}
			return nil
		}
		if err := p.readFile(ctx, i, emit); err != nil {
			return fmt.Errorf("read %s: %w", f.name, err)
		}
		p.readDone += f.size
		p.report(p.readDone, true)
	}
	return send()
}

// readFile opens one input, hashes its bytes as stored, decompresses it and
// runs the format's reader.
func (p *pipeline) readFile(ctx context.Context, i int, emit emitFunc) error {
	f := &p.files[i]
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	h := sha256.New()
	if f.format == FormatParquet && f.compression == CompressionNone {
		if err := p.readParquetFile(fh, f, h, emit); err != nil {
			return err
		}
		p.stats[i].sha256 = hex.EncodeToString(h.Sum(nil))
		p.stats[i].bytes = f.size
		return nil
	}
	cr := &countingReader{r: fh, h: h, onRead: func(n int64) { p.report(p.readDone+n, false) }}
	d, err := decompress(cr)
	if err != nil {
		return err
	}
	defer d.Close()
	emitCtx := func(it item) error {
		if it.src.Row&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return emit(it)
	}
	switch f.format {
	case FormatJSONL:
		err = readJSONL(d.Reader, 1, emitCtx)
	case FormatJSON:
		err = readJSON(d.Reader, p.conv.looksLikeRecord, emitCtx)
	case FormatCSV:
		err = readCSV(d.Reader, ',', emitCtx)
	case FormatTSV:
		err = readCSV(d.Reader, '\t', emitCtx)
	case FormatText:
		err = readText(d.Reader, p.opts.TextChunkChars, p.opts.TextChunkParagraphs, emitCtx)
	case FormatParquet:
		// A compressed Parquet file needs random access: decompress to memory.
		var buf []byte
		if buf, err = io.ReadAll(d.Reader); err == nil {
			err = readParquet(bytes.NewReader(buf), int64(len(buf)), nil, emitCtx)
		}
	default:
		err = fmt.Errorf("unknown format %q", f.format)
	}
	if err != nil {
		return err
	}
	// Drain what the format reader left (trailing bytes) so the hash
	// covers the whole file.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return err
	}
	p.stats[i].sha256 = hex.EncodeToString(h.Sum(nil))
	p.stats[i].bytes = cr.n
	return nil
}

func (p *pipeline) readParquetFile(fh *os.File, f *inputFile, h hash.Hash, emit emitFunc) error {
	if _, err := io.Copy(h, fh); err != nil {
		return err
	}
	return readParquet(fh, f.size, func(done, total int64) {
		if total > 0 {
			p.report(p.readDone+f.size*done/total, false)
		}
	}, emit)
}

// report calls the Progress callback, at most once per 4 MiB read, always
// at the end of a file.
func (p *pipeline) report(read int64, force bool) {
	if p.opts.Progress == nil || (!force && read-p.lastRep < 4<<20) {
		return
	}
	p.lastRep = read
	p.opts.Progress(read, p.total)
}

// countingReader hashes and counts the bytes of a file as stored on disk.
type countingReader struct {
	r      io.Reader
	h      hash.Hash
	n      int64
	onRead func(int64)
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.h.Write(b[:n])
		c.n += int64(n)
		c.onRead(c.n)
	}
	return n, err
}

func hex64(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}
