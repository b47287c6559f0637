package data

import (
	"strconv"
	"unicode/utf8"
)

// appendJSONString appends s as a JSON string exactly as encoding/json
// does with HTML escaping off: the prepared files are written by hand
// because reflection-based encoding was the slowest step at 1 GB scale,
// and the result must stay byte-identical to what the loader expects.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringBody(b, s)
	return append(b, '"')
}

// appendJSONStringBody appends s escaped as in appendJSONString, without
// the quotes, so a string can be written in pieces.
func appendJSONStringBody(b []byte, s string) []byte {
	b, _ = appendJSONStringPiece(b, s)
	return b
}

// appendJSONStringPiece is appendJSONStringBody that also reports the
// length s will have once read back: each invalid UTF-8 byte becomes
// U+FFFD (3 bytes), the rest is unchanged. Segment lengths are written
// this way so they match the text a reader decodes even if a segment is
// not valid UTF-8 (a template that splits a rune).
func appendJSONStringPiece(b []byte, s string) ([]byte, int) {
	const hex = "0123456789abcdef"
	decoded := len(s)
	start := 0
	for i := 0; i < len(s); {
		i += jsonPlainLen(s[i:])
		if i >= len(s) {
			break
		}
		c := s[i]
		if jsonPlain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			decoded += len("\uFFFD") - 1
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are escaped, as encoding/json does, because
		// JavaScript treats them as line ends.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...), decoded
}

func appendJSONBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

func appendJSONInt(b []byte, v int) []byte { return strconv.AppendInt(b, int64(v), 10) }
