package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// byteTokenizer is a deterministic test tokenizer: one token per byte
// (ids 0-255), known control-token strings as single ids when parsing
// specials, and bosID for addSpecial. Byte-level tokenization of the pieces
// concatenates to the tokenization of the whole, so masks read back exactly.
type byteTokenizer struct{}

const bosID = 1000

func testSpecials() []string {
	return []string{
		"<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
		"<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>", "</s>", "<s>",
	}
}

func (byteTokenizer) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	var ids []int32
	if addSpecial {
		ids = append(ids, bosID)
	}
	specials := testSpecials()
	for i := 0; i < len(text); {
		matched := false
		if parseSpecial {
			for k, s := range specials {
				if strings.HasPrefix(text[i:], s) {
					ids = append(ids, int32(256+k))
					i += len(s)
					matched = true
					break
				}
			}
		}
		if !matched {
			ids = append(ids, int32(text[i]))
			i++
		}
	}
	return ids, nil
}

func (byteTokenizer) Detokenize(ids []int32) (string, error) {
	var b strings.Builder
	specials := testSpecials()
	for _, id := range ids {
		switch {
		case id == bosID:
			b.WriteString("<BOS>")
		case id < 256:
			b.WriteByte(byte(id))
		case int(id-256) < len(specials):
			b.WriteString(specials[id-256])
		default:
			return "", fmt.Errorf("unknown id %d", id)
		}
	}
	return b.String(), nil
}

var _ Tokenizer = byteTokenizer{}

// writeFile writes content under dir, creating parents, and returns the path.
func writeFile(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, content, 0o644))
	return p
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	defer w.Close()
	return w.EncodeAll(b, nil)
}

// readAll runs ReadExamples on paths with default options plus opts.
func readAll(t *testing.T, opts ReadOptions, paths ...string) ([]Example, []Skip) {
	t.Helper()
	exs, skips, err := ReadExamples(context.Background(), paths, opts)
	require.NoError(t, err)
	return exs, skips
}

// qa builds the messages of a one-exchange conversation.
func qa(q, a string) []Message {
	return []Message{{RoleUser, q}, {RoleAssistant, a}}
}
