package data

import "unicode/utf8"

// jsonPlain marks the ASCII bytes a JSON string holds as they are: all but
// the quote, the backslash and control characters.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// jsonPlainLen returns how many bytes at the start of s are plain ASCII
// (jsonPlain) in whole 8-byte words, testing a word at a time: string
// decoding and escaping spend most of their time passing over such text.
// The caller goes on byte by byte from there.
func jsonPlainLen[T string | []byte](s T) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		quote, backslash := x^(ones*'"'), x^(ones*'\\')
		// With no high bit set (x&highs == 0) each of these is non-zero
		// exactly when some byte is a control character, a quote or a
		// backslash (the classic "has a byte less than n" tests).
		if (x|(x-ones*0x20)&^x|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0 {
			break
		}
	}
	return i
}
