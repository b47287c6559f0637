package data

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// checkParseJSON compares parseJSON with encoding/json on one input.
func checkParseJSON(t *testing.T, in []byte) {
	var want any
	wantErr := json.Unmarshal(in, &want)
	got, ok := parseJSON(in)
	if wantErr != nil {
		assert.False(t, ok, "%q: encoding/json rejects it (%v), parseJSON gave %#v", in, wantErr, got)
		return
	}
	if assert.True(t, ok, "%q: encoding/json accepts it, parseJSON does not", in) {
		assert.Equal(t, want, got, "%q", in)
	}
}

func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `{"a":1}`, ` {"a" : [1, 2.5, -3e2, true, false, null, "x"]} `, `{"a":1,"a":2}`,
		`"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r"`, `"\ud800"`, `"\udc00\ud800"`, `"\ud800\u0041"`, `"\ud83d\ude0"`,
		"\"caf\xc3\xa9 \xff bad\"", "\"二酸化炭素 then \\n an escape\"", "\"é then a control \x01\"", "\"ü\xc3\"", `{"q":"What?","a":"Yes."}`, `0`, `-0`, `01`, `1.`, `.5`, `1e`, `1e+`, `-`, `1e400`,
		`tru`, `nulll`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `[1 2]`, `"tab	in"`, "\"nl\nin\"", `"\x"`, `"\u12G4"`,
		`{"a":{"b":{"c":[[[]]]}}}`, `[` + strings.Repeat(`[`, 5) + strings.Repeat(`]`, 6), `1 2`, ``, `   `,
		strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	} {
		checkParseJSON(t, []byte(in))
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"question":"What is albedo?","answer":"Reflectivity."}`, `[1,"\u00e9",{"x":null}]`,
		`"\ud83d\ude00"`, `{"messages":[{"role":"user","content":"hi"}]}`, `-1.5e-3`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkParseJSON(t, in) })
}
