package data

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// DefaultTextChunkChars is the chunk size for plain text when neither
// TextChunkChars nor TextChunkParagraphs is set: about 500 tokens of
// English, short enough to pack several into a typical context.
const DefaultTextChunkChars = 2000

// paraSep joins paragraphs in a chunk.
const paraSep = "\n\n"

// textChunker gathers paragraphs (separated by blank lines) into chunks of
// about maxChars characters, or of maxParas paragraphs when that is set,
// for continued pre-training. A paragraph longer than a chunk is cut at a
// line, then sentence, then word boundary.
type textChunker struct {
	maxChars, maxParas int
	emit               emitFunc

	chunk      strings.Builder
	chunkLine  int // first line of the chunk
	chunkChars int
	chunkParas int
	row        int

	para     strings.Builder
	paraLine int
}

func readText(r *bufio.Reader, maxChars, maxParas int, emit emitFunc) error {
	if maxChars <= 0 && maxParas <= 0 {
		maxChars = DefaultTextChunkChars
	}
	c := &textChunker{maxChars: maxChars, maxParas: maxParas, emit: emit}
	line := 0
	for {
		s, err := r.ReadString('\n')
		if len(s) > 0 {
			line++
			if strings.TrimSpace(s) == "" {
				if ferr := c.endParagraph(); ferr != nil {
					return ferr
				}
			} else {
				if c.para.Len() == 0 {
					c.paraLine = line
				}
				c.para.WriteString(strings.TrimRight(s, "\r\n"))
				c.para.WriteByte('\n')
				if ferr := c.bound(); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			if ferr := c.endParagraph(); ferr != nil {
				return ferr
			}
			return c.flush()
		}
		if err != nil {
			return err
		}
	}
}

// paraCap bounds a paragraph in memory: a file with no blank lines must
// still be read in pieces.
func (c *textChunker) paraCap() int {
	if c.maxParas > 0 || c.maxChars <= 0 {
		return 1 << 20
	}
	return 4 * c.maxChars
}

// bound cuts the paragraph being read when it grows past what a chunk can hold.
func (c *textChunker) bound() error {
	if c.para.Len() < c.paraCap() {
		return nil
	}
	limit := c.maxChars
	if limit <= 0 || c.maxParas > 0 {
		limit = c.paraCap()
	}
	p := c.para.String()
	pieces := splitLong(p, limit)
	last := pieces[len(pieces)-1]
	if err := c.flush(); err != nil {
		return err
	}
	line := c.paraLine
	for _, piece := range pieces[:len(pieces)-1] {
		if err := c.emitChunk(piece, line); err != nil {
			return err
		}
		line += strings.Count(piece, "\n")
	}
	c.para.Reset()
	c.para.WriteString(last)
	c.paraLine = line
	return nil
}

func (c *textChunker) endParagraph() error {
	if c.para.Len() == 0 {
		return nil
	}
	p := strings.TrimRight(c.para.String(), "\n")
	line := c.paraLine
	c.para.Reset()
	n := utf8.RuneCountInString(p)
	if c.maxParas > 0 {
		c.add(p, n, line)
		if c.chunkParas >= c.maxParas {
			return c.flush()
		}
		return nil
	}
	if c.chunkParas > 0 && c.chunkChars+len(paraSep)+n > c.maxChars {
		if err := c.flush(); err != nil {
			return err
		}
	}
	if n <= c.maxChars {
		c.add(p, n, line)
		return nil
	}
	for _, piece := range splitLong(p, c.maxChars) {
		if err := c.emitChunk(piece, line); err != nil {
			return err
		}
		line += strings.Count(piece, "\n")
	}
	return nil
}

func (c *textChunker) add(p string, n, line int) {
	if c.chunkParas == 0 {
		c.chunkLine = line
	} else {
		c.chunk.WriteString(paraSep)
		c.chunkChars += len(paraSep)
	}
	c.chunk.WriteString(p)
	c.chunkChars += n
	c.chunkParas++
}

func (c *textChunker) flush() error {
	if c.chunkParas == 0 {
		return nil
	}
	s := c.chunk.String()
	c.chunk.Reset()
	c.chunkChars, c.chunkParas = 0, 0
	return c.emitChunk(s, c.chunkLine)
}

func (c *textChunker) emitChunk(s string, line int) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	c.row++
	return c.emit(item{src: Source{Line: line, Row: c.row}, text: s})
}

// splitLong cuts s into pieces of at most max characters, preferring to
// cut after a newline, then after a sentence end, then at a space.
func splitLong(s string, max int) []string {
	var out []string
	for {
		// The byte index just past max runes; s fits when that is its end. Counting
		// only this far keeps a paragraph of n bytes linear, not n²/max.
		end, n := 0, 0
		for end < len(s) && n < max {
			_, w := utf8.DecodeRuneInString(s[end:])
			end += w
			n++
		}
		if end >= len(s) {
			break
		}
		cut := strings.LastIndexByte(s[:end], '\n') + 1
		if cut < end/2 {
			if k := lastSentenceEnd(s[:end]); k > end/2 {
				cut = k
			} else if k := strings.LastIndexByte(s[:end], ' ') + 1; k > end/2 {
				cut = k
			} else {
				cut = end
			}
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

func lastSentenceEnd(s string) int {
	best := -1
	for _, sep := range []string{". ", "! ", "? ", "。"} {
		if k := strings.LastIndex(s, sep); k >= 0 && k+len(sep) > best {
			best = k + len(sep)
		}
	}
	return best
}
