package eval

import "strings"

// PorterStem stems one word as NLTK's PorterStemmer does in its default
// NLTK_EXTENSIONS mode, which is the stemmer rouge-score uses. That mode is
// Porter's 1980 algorithm plus Martin Porter's later fixes and a few NLTK
// additions: a table of irregular forms, words of one or two letters left
// alone, "ies"/"ied" kept as "ie" in four-letter words (dies, died), y→i
// only after a consonant, "alli" handled before the other step-2 rules,
// "fulli" and "logi" rules, and a two-letter vowel-consonant stem counting
// as ending consonant-vowel-consonant.
//
// The word is lower-cased first, as NLTK does by default.
func PorterStem(word string) string {
	lower := pyLower(word)
	if stem, ok := porterIrregular(word); ok {
		return stem
	}
	w := porterWord([]rune(lower))
	if len([]rune(word)) <= 2 {
		return lower
	}
	w = w.step1a()
	w = w.step1b()
	w = w.step1c()
	w = w.step2()
	w = w.step3()
	w = w.step4()
	w = w.step5a()
	w = w.step5b()
	return string(w)
}

// porterIrregular maps the irregular forms NLTK's table knows to their stem.
// NLTK looks the word up before lower-casing it, so "Dying" is not found.
func porterIrregular(word string) (string, bool) {
	switch word {
	case "sky", "skies":
		return "sky", true
	case "dying":
		return "die", true
	case "lying":
		return "lie", true
	case "tying":
		return "tie", true
	case "news":
		return "news", true
	case "innings", "inning":
		return "inning", true
	case "outings", "outing":
		return "outing", true
	case "cannings", "canning":
		return "canning", true
	case "howe":
		return "howe", true
	case "proceed":
		return "proceed", true
	case "exceed":
		return "exceed", true
	case "succeed":
		return "succeed", true
	}
	return "", false
}

// porterWord is a word being stemmed, as code points so that indexes
// count letters as Python's do.
type porterWord []rune

// consonant reports whether w[i] is a consonant: a letter other than
// a, e, i, o, u, and other than a y that follows a consonant.
func (w porterWord) consonant(i int) bool {
	switch w[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !w.consonant(i-1)
	}
	return true
}

// measure returns m in Porter's [C](VC){m}[V]: the number of
// vowel-to-consonant transitions.
func (w porterWord) measure() int {
	m := 0
	for i := 1; i < len(w); i++ {
		if !w.consonant(i-1) && w.consonant(i) {
			m++
		}
	}
	return m
}

// hasVowel is Porter's condition *v*.
func (w porterWord) hasVowel() bool {
	for i := range w {
		if !w.consonant(i) {
			return true
		}
	}
	return false
}

// endsDoubleConsonant is Porter's condition *d.
func (w porterWord) endsDoubleConsonant() bool {
	n := len(w)
	return n >= 2 && w[n-1] == w[n-2] && w.consonant(n-1)
}

// endsCVC is Porter's condition *o: the word ends consonant-vowel-consonant
// and the last consonant is not w, x or y. NLTK also accepts a two-letter
// word that is vowel-consonant, so that "ow(ing)" and the like keep an e.
func (w porterWord) endsCVC() bool {
	n := len(w)
	if n >= 3 && w.consonant(n-3) && !w.consonant(n-2) && w.consonant(n-1) {
		switch w[n-1] {
		case 'w', 'x', 'y':
		default:
			return true
		}
	}
	return n == 2 && !w.consonant(0) && w.consonant(1)
}

// hasSuffix reports whether w ends with suffix.
func (w porterWord) hasSuffix(suffix string) bool {
	return strings.HasSuffix(string(w), suffix)
}

// trim returns w without its last n letters, as a new word.
func (w porterWord) trim(n int) porterWord {
	return append(porterWord(nil), w[:len(w)-n]...)
}

// plus returns w with s appended, as a new word.
func (w porterWord) plus(s string) porterWord {
	return append(w[:len(w):len(w)], []rune(s)...)
}

// porterRule replaces suffix by repl when cond (if any) holds for the stem
// left after removing suffix.
type porterRule struct {
	suffix, repl string
	cond         func(stem porterWord) bool
}

// applyRules applies the first rule whose suffix matches. If that rule's
// condition fails, no later rule is tried: Porter's steps pick the longest
// matching suffix first and stop there ("agreement" does not fall through
// from "ement" to "ment").
func (w porterWord) applyRules(rules []porterRule) porterWord {
	for _, r := range rules {
		if !w.hasSuffix(r.suffix) {
			continue
		}
		stem := w.trim(len(r.suffix))
		if r.cond == nil || r.cond(stem) {
			return stem.plus(r.repl)
		}
		return w
	}
	return w
}

// positiveMeasure is the condition (m>0).
func positiveMeasure(stem porterWord) bool { return stem.measure() > 0 }

// measureAboveOne is the condition (m>1).
func measureAboveOne(stem porterWord) bool { return stem.measure() > 1 }

// step1a removes plural endings: sses→ss, ies→i, ss→ss, s→"".
func (w porterWord) step1a() porterWord {
	// NLTK: a four-letter "-ies" word keeps "ie" (dies→die, but flies→fli).
	if len(w) == 4 && w.hasSuffix("ies") {
		return w.trim(3).plus("ie")
	}
	return w.applyRules([]porterRule{
		{"sses", "ss", nil},
		{"ies", "i", nil},
		{"ss", "ss", nil},
		{"s", "", nil},
	})
}

// step1b removes -eed, -ed and -ing, then repairs the stem.
func (w porterWord) step1b() porterWord {
	// NLTK: "-ied" becomes "ie" in four-letter words (died→die) and "i"
	// otherwise (spied→spi), and nothing else in this step applies.
	if w.hasSuffix("ied") {
		if len(w) == 4 {
			return w.trim(3).plus("ie")
		}
		return w.trim(3).plus("i")
	}
	if w.hasSuffix("eed") {
		if stem := w.trim(3); stem.measure() > 0 {
			return stem.plus("ee")
		}
		return w
	}
	var stem porterWord
	switch {
	case w.hasSuffix("ed") && w.trim(2).hasVowel():
		stem = w.trim(2)
	case w.hasSuffix("ing") && w.trim(3).hasVowel():
		stem = w.trim(3)
	default:
		return w
	}
	switch {
	case stem.hasSuffix("at"), stem.hasSuffix("bl"), stem.hasSuffix("iz"):
		// conflat(ed)→conflate, troubl(ed)→trouble, siz(ed)→size.
		return stem.plus("e")
	case stem.endsDoubleConsonant():
		// hopp(ing)→hop, but fall(ing), hiss(ing), fizz(ed) keep both.
		switch stem[len(stem)-1] {
		case 'l', 's', 'z':
			return stem
		}
		return stem.trim(1)
	case stem.measure() == 1 && stem.endsCVC():
		// fil(ing)→file.
		return stem.plus("e")
	}
	return stem
}

// step1c turns a final y into i after a consonant that is not the first
// letter (NLTK's rule: happy→happi, but enjoy and by stay).
func (w porterWord) step1c() porterWord {
	n := len(w)
	if n > 0 && w[n-1] == 'y' {
		if n-1 > 1 && w.consonant(n-2) {
			return w.trim(1).plus("i")
		}
	}
	return w
}

// step2 maps double suffixes to single ones when the stem has m>0.
func (w porterWord) step2() porterWord {
	// NLTK applies alli→al first and then runs step 2 again, instead of
	// trying it after "bli" as the published algorithm does.
	if w.hasSuffix("alli") && w.trim(4).measure() > 0 {
		return w.trim(4).plus("al").step2()
	}
	logi := func(porterWord) bool {
		// The "l" of "logi" stays with the stem when measuring, so short
		// stems such as "geo" in "geologi" qualify.
		return w.trim(3).measure() > 0
	}
	return w.applyRules([]porterRule{
		{"ational", "ate", positiveMeasure},
		{"tional", "tion", positiveMeasure},
		{"enci", "ence", positiveMeasure},
		{"anci", "ance", positiveMeasure},
		{"izer", "ize", positiveMeasure},
		{"bli", "ble", positiveMeasure},
		{"alli", "al", positiveMeasure},
		{"entli", "ent", positiveMeasure},
		{"eli", "e", positiveMeasure},
		{"ousli", "ous", positiveMeasure},
		{"ization", "ize", positiveMeasure},
		{"ation", "ate", positiveMeasure},
		{"ator", "ate", positiveMeasure},
		{"alism", "al", positiveMeasure},
		{"iveness", "ive", positiveMeasure},
		{"fulness", "ful", positiveMeasure},
		{"ousness", "ous", positiveMeasure},
		{"aliti", "al", positiveMeasure},
		{"iviti", "ive", positiveMeasure},
		{"biliti", "ble", positiveMeasure},
		{"fulli", "ful", positiveMeasure},
		{"logi", "log", logi},
	})
}

// step3 removes -ic-, -full, -ness and similar when the stem has m>0.
func (w porterWord) step3() porterWord {
	return w.applyRules([]porterRule{
		{"icate", "ic", positiveMeasure},
		{"ative", "", positiveMeasure},
		{"alize", "al", positiveMeasure},
		{"iciti", "ic", positiveMeasure},
		{"ical", "ic", positiveMeasure},
		{"ful", "", positiveMeasure},
		{"ness", "", positiveMeasure},
	})
}

// step4 removes the remaining suffixes when the stem has m>1.
func (w porterWord) step4() porterWord {
	ion := func(stem porterWord) bool {
		n := len(stem)
		return stem.measure() > 1 && (stem[n-1] == 's' || stem[n-1] == 't')
	}
	return w.applyRules([]porterRule{
		{"al", "", measureAboveOne},
		{"ance", "", measureAboveOne},
		{"ence", "", measureAboveOne},
		{"er", "", measureAboveOne},
		{"ic", "", measureAboveOne},
		{"able", "", measureAboveOne},
		{"ible", "", measureAboveOne},
		{"ant", "", measureAboveOne},
		{"ement", "", measureAboveOne},
		{"ment", "", measureAboveOne},
		{"ent", "", measureAboveOne},
		{"ion", "", ion},
		{"ou", "", measureAboveOne},
		{"ism", "", measureAboveOne},
		{"ate", "", measureAboveOne},
		{"iti", "", measureAboveOne},
		{"ous", "", measureAboveOne},
		{"ive", "", measureAboveOne},
		{"ize", "", measureAboveOne},
	})
}

// step5a removes a final e when m>1, or when m=1 and the stem does not end
// consonant-vowel-consonant (probate→probat, cease→ceas, but rate stays).
// Both conditions are tried, unlike the first-match rule of other steps.
func (w porterWord) step5a() porterWord {
	if !w.hasSuffix("e") {
		return w
	}
	stem := w.trim(1)
	if m := stem.measure(); m > 1 || (m == 1 && !stem.endsCVC()) {
		return stem
	}
	return w
}

// step5b turns a final ll into l when the word minus one l has m>1
// (controll→control, but roll stays).
func (w porterWord) step5b() porterWord {
	if w.hasSuffix("ll") && w.trim(1).measure() > 1 {
		return w.trim(1)
	}
	return w
}
