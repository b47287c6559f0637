package data

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"
)

func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"already clean", "already clean"},
		{"  trim me \n", "trim me"},
		{"a  b \t c", "a b c"},
		{"line one   \nline two", "line one\nline two"},
		{"p1\n\n\n\n\np2", "p1\n\np2"},
		{"windows\r\nand mac\rends", "windows\nand mac\nends"},
		{"def f():\n    return 1", "def f():\n    return 1"}, // indentation kept for code
		{"e\u0301te\u0301", "été"},                           // NFD to NFC
		{"zero\u200bwidth\ufeff bom\u00adsoft", "zerowidth bomsoft"},
		{"bell\x07 and nul\x00", "bell and nul"},
		{"nbsp\u00a0\u00a0here", "nbsp here"},
		{"emoji 👩\u200d🔬 kept", "emoji 👩\u200d🔬 kept"}, // ZWJ sequences survive
		{"bad \xff utf8", "bad \ufffd utf8"},
		{"<p>Para one.</p><p>Para two.</p>", "Para one.\n\nPara two."},
		{"x<br>y<br/>z", "x\ny\nz"},
		{`<a href="https://x.org/?a=1&b=>2">link</a> text`, "link text"},
		{"<!-- comment -->visible", "visible"},
		{"<script>alert('x')</script>safe<style>p{}</style>", "safe"},
		{"AT&amp;T &lt;b&gt; &#8364;5 &copy; &nbsp;x", "AT&T <b> €5 © x"},
		{"if a < b && c > d", "if a < b && c > d"},
		{"List<T> and Map<K, V>", "List<T> and Map<K, V>"},
		{"a <b c", "a <b c"},
		{"<td>a</td><td>b</td>", "a b"},
	} {
		got := CleanText(tc.in, false)
		assert.Equal(t, tc.want, got, "%q", tc.in)
		assert.True(t, norm.NFC.IsNormalString(got))
		if !strings.Contains(tc.in, "&lt;") { // escaped markup becomes literal text, which a second pass would strip
			assert.Equal(t, got, CleanText(got, false), "idempotent on %q", tc.in)
		}
	}
	assert.Equal(t, "<b>bold</b> &amp;", CleanText("<b>bold</b> &amp;", true), "keepHTML")
	for r := rune(0); r < 0x3100; r++ {
		assert.Equal(t, unicode.Is(unicode.Zs, r) || r == '\t', isHSpace(r), "%U", r)
	}
}

func FuzzCleanText(f *testing.F) {
	f.Add("<p>x&amp;y</p>\r\n  z\u0301")
	f.Fuzz(func(t *testing.T, s string) {
		got := CleanText(s, false)
		if !norm.NFC.IsNormalString(got) {
			t.Fatalf("not NFC: %q -> %q", s, got)
		}
		for _, r := range got {
			if dropRune(r) && r != '\n' && r != '\t' {
				t.Fatalf("control character left: %q -> %q", s, got)
			}
		}
		if foldHash(fnvOffset, s) != foldHashRef(fnvOffset, s) {
			t.Fatalf("foldHash %q differs from the reference", s)
		}
		for _, keep := range []bool{false, true} {
			if want := cleanTextRef(s, keep); CleanText(s, keep) != want {
				t.Fatalf("keepHTML %v: %q -> %q, the reference gives %q", keep, s, CleanText(s, keep), want)
			}
		}
	})
}

// TestCleanTextMatchesReference runs the fast paths against the plain
// rune-at-a-time cleaner (and the folding hash against its first version)
// on strings built from the pieces they treat specially.
func TestCleanTextMatchesReference(t *testing.T) {
	pieces := []string{
		"a", "Word", "42", ".", " ", "  ", "\t", "\n", "\n\n\n", "\r\n", "\r", "<b>", "</p>", "<br/>",
		"&amp;", "&", "<", "List<T>", "é", "e\u0301", "\u0301", "Zürich", "二酸化炭素", "가", "\u11a8",
		"\u00a0", "\u3000", "\u2028", "\u200b", "\ufeff", "\u00ad", "\x07", "\x7f", "\u0085", "\xff",
		"—", "“q”", "…", "\u2000", "\u2126", "\u0bc6\u0bbe", "👩\u200d🔬", "\u0958", "ǅ",
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 20000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		for _, keep := range []bool{false, true} {
			want := cleanTextRef(s, keep)
			require.Equal(t, want, CleanText(s, keep), "keepHTML %v: %q", keep, s)
			require.Equal(t, isCleanRef(s, keep), isClean(s, keep), "isClean, keepHTML %v: %q", keep, s)
		}
		require.Equal(t, foldHashRef(fnvOffset, s), foldHash(fnvOffset, s), "foldHash %q", s)
	}
}

// TestNFCInert checks nfcInert against the Unicode tables: each rune it
// names is in NFC and starts a new NFC segment (nothing before it can
// compose with it), which is what lets a string of them skip the NFC pass.
func TestNFCInert(t *testing.T) {
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if !nfcInert(r) {
			continue
		}
		s := string(r)
		require.True(t, norm.NFC.IsNormalString(s), "%U is not NFC", r)
		p := norm.NFC.PropertiesString(s)
		require.True(t, p.BoundaryBefore(), "%U can compose with what precedes it", r)
		require.Zero(t, p.CCC(), "%U combines", r)
	}
}

func TestFoldHashFoldsCaseSpacePunctuation(t *testing.T) {
	h := func(s string) uint64 { return foldHash(fnvOffset, s) }
	assert.Equal(t, h("What is CO2?"), h("  what   is co2"))
	assert.Equal(t, h("Don't stop."), h("dont stop"))
	assert.Equal(t, h("ÉTÉ — chaud!"), h("été chaud"))
	assert.NotEqual(t, h("what is co2"), h("what is co3"))
	assert.NotEqual(t, h("ab c"), h("a bc"))
}

// TestContentHashesAreStable pins the hashes: they choose each example's
// split and id, so a faster implementation must give the same values.
func TestContentHashesAreStable(t *testing.T) {
	examples := []Example{
		{Shape: ShapeText, Text: "Some corpus text, with PUNCTUATION!\n\nAnd\ttabs."},
		{Shape: ShapeQA, Messages: []Message{{RoleUser, "What is CO2?"}, {RoleAssistant, "Carbon  dioxide —  a gas."}}},
		{Shape: ShapeInstruction, Messages: []Message{{RoleSystem, "Be brief."}, {RoleUser, "Translate"}, {RoleAssistant, "Zürich, São Paulo, 二酸化炭素 énergie"}}, Input: "ÉNERGIE ‘quoted’ \u00a0x"},
		{Shape: ShapeChat, Messages: []Message{{RoleUser, "ÀÉÎ ǅ ß"}, {RoleAssistant, "\u200bzero\u00adwidth ~`^"}}},
	}
	want := [][2]uint64{ // exact, folded
		{0x672c1683367dd989, 0x6f1e54d4690d6e35},
		{0x7bfea275f848222e, 0x4a4dc24bd30fdd93},
		{0x6f128cf0b541987, 0x59dc80a1ac664796},
		{0x79002c846b056f54, 0x53985805ee93fb5f},
	}
	for i := range examples {
		assert.Equal(t, want[i], [2]uint64{exactHash(&examples[i]), foldedHash(&examples[i])}, "example %d", i)
	}
}

func TestHashSet(t *testing.T) {
	var s hashSet
	for i := range uint64(10000) {
		assert.True(t, s.add(mix64(i)))
	}
	assert.True(t, s.add(0))
	assert.False(t, s.add(0))
	for i := range uint64(10000) {
		assert.False(t, s.add(mix64(i)))
	}
	assert.Equal(t, 10001, s.n)
}

func TestSplitAssignFractions(t *testing.T) {
	fr, err := NewFractions(0.05, 0.05)
	assert.NoError(t, err)
	assert.InDelta(t, 0.9, fr.Train, 1e-12)
	counts := map[Split]int{}
	for i := range uint64(100000) {
		counts[fr.Assign(fnvString(fnvOffset, string(rune(i))+"x"), 42)]++
	}
	assert.InDelta(t, 90000, counts[SplitTrain], 600)
	assert.InDelta(t, 5000, counts[SplitVal], 400)
	assert.InDelta(t, 5000, counts[SplitTest], 400)
	only, _ := NewFractions(0, 0)
	assert.Equal(t, SplitTrain, only.Assign(123, 1))
	_, err = NewFractions(-0.1, 0)
	assert.Error(t, err)
}

func TestAugmentVariants(t *testing.T) {
	ex := &Example{ID: "x", Shape: ShapeQA, Messages: []Message{{RoleSystem, "S"}, {RoleUser, "What is CO2?"}, {RoleAssistant, "A gas."}}}
	a := augment(ex, 3, 1, 99)
	b := augment(ex, 3, 1, 99)
	assert.Equal(t, a, b, "seeded")
	assert.Len(t, a, 3)
	seen := map[string]bool{}
	for i, v := range a {
		assert.True(t, v.Augmented)
		assert.Equal(t, "x-aug"+string(rune('1'+i)), v.ID)
		assert.Equal(t, "S", v.Messages[0].Content)
		assert.Equal(t, "A gas.", v.Messages[2].Content)
		assert.NotEqual(t, "What is CO2?", v.Messages[1].Content)
		assert.Contains(t, v.Messages[1].Content, "hat is CO2?")
		assert.False(t, seen[v.Messages[1].Content], "variants differ")
		seen[v.Messages[1].Content] = true
	}
	assert.Equal(t, "What is CO2?", ex.Messages[1].Content, "the original is untouched")
	assert.Equal(t, "CO2 levels", lowerFirst("CO2 levels"))
	assert.Equal(t, "the sea", lowerFirst("The sea"))
	assert.Empty(t, augment(&Example{Shape: ShapeText, Text: "t"}, 2, 1, 1))
}
