package data

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "controls \x00\x01\x1f\x7f \b\f\n\r\t",
		"unicode é ü 日本 🌍", "separators \u2028 \u2029", "invalid \xff\xfe utf8", "<html> & 'x'",
		"\xed\xa0\x80 surrogate half",
	} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		assert.Equal(t, string(want), string(appendJSONString(nil, s)), "%q", s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"b\\c\n\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		if want := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(want, appendJSONString(nil, s)) {
			t.Fatalf("%q: want %s got %s", s, want, appendJSONString(nil, s))
		}
	})
}

// TestJSONPlainLen checks the word-at-a-time scan against the table, for
// every byte value at every position of a word.
func TestJSONPlainLen(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			b := []byte("abcdefghijklmnopqrstuvwx")
			b[8+pos] = byte(c)
			want := len(b)
			if !jsonPlain[c] {
				want = 8
			}
			assert.Equal(t, want, jsonPlainLen(b), "byte %#x at %d", c, 8+pos)
			assert.Equal(t, want, jsonPlainLen(string(b)), "byte %#x at %d", c, 8+pos)
		}
	}
	assert.Equal(t, 0, jsonPlainLen("short"), "only whole words")
}

func TestAppendJSONStringPieceLength(t *testing.T) {
	for _, s := range []string{"", "plain", "é 日本", "bad \xff\xfe", "\xe6\x97", "half \xe6\x97 rune", "\xed\xa0\x80"} {
		var back string
		require.NoError(t, json.Unmarshal(appendJSONString(nil, s), &back))
		_, n := appendJSONStringPiece(nil, s)
		assert.Equal(t, len(back), n, "%q", s)
	}
}
