package eval

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestPorterStem checks words whose NLTK (NLTK_EXTENSIONS) stems were
// worked out by hand from the rules in NLTK's nltk/stem/porter.py. m is
// Porter's measure, the number of vowel-consonant transitions.
func TestPorterStem(t *testing.T) {
	cases := []struct {
		word, want, why string
	}{
		{"caresses", "caress", "1a: sses→ss; no later rule matches"},
		{"ponies", "poni", "1a: ies→i (six letters, so not NLTK's ie rule)"},
		{"cats", "cat", "1a: s→''"},
		{"caress", "caress", "1a: ss→ss blocks s→''"},
		{"dies", "die", "1a NLTK: four-letter ies→ie; 5a: m(di)=0 keeps e"},
		{"flies", "fli", "1a: ies→i"},
		{"relational", "relat", "2: ational→ate (m(rel)=1); 4: ate needs m(rel)>1, no; 5a: m(relat)=2 drops e"},
		{"conditional", "condit", "2: tional→tion (m(condi)=1); 4: ion after t with m(condit)=2"},
		{"generalizations", "gener", "1a: s; 2: ization→ize (m(general)=3); 3: alize→al; 4: al with m(gener)=2"},
		{"running", "run", "1b: ing, *v* in runn; double n not l/s/z drops one"},
		{"hopping", "hop", "1b: ing; pp→p"},
		{"filing", "file", "1b: ing; m(fil)=1 and fil is cvc, add e; 5a: m=1 and cvc keeps e"},
		{"happily", "happili", "1c: y→i after consonant l; no step-2 suffix fits happili"},
		{"agreed", "agre", "1b: eed→ee as m(agr)=1; 5a: m(agre)=1, gre is not cvc, drop e"},
		{"feed", "feed", "1b: eed with m(f)=0 leaves the word (ed is not tried)"},
		{"plastered", "plaster", "1b: ed; 4: er needs m(plast)>1 but it is 1"},
		{"motoring", "motor", "1b: ing; m(motor)=2 so no e is added"},
		{"sing", "sing", "1b: ing but s has no vowel"},
		{"probate", "probat", "4: ate needs m(prob)>1, no; 5a: m(probat)=2 drops e"},
		{"rate", "rate", "5a: m(rat)=1 and rat is cvc, keep e"},
		{"cease", "ceas", "5a: m(ceas)=1 and eas is not cvc, drop e"},
		{"controll", "control", "5b: m(control)=2, ll→l"},
		{"roll", "roll", "5b: m(rol)=1, keep ll"},
		{"triplicate", "triplic", "3: icate→ic (m(tripl)=1); 4: ic needs m(tripl)>1"},
		{"electrical", "electr", "3: ical→ic; 4: ic with m(electr)=2"},
		{"hopeful", "hope", "3: ful (m(hope)=1); 5a: hop is cvc, keep e"},
		{"goodness", "good", "1a: ss; 3: ness with m(good)=1"},
		{"adjustable", "adjust", "4: able with m(adjust)=2"},
		{"replacement", "replac", "4: ement with m(replac)=2"},
		{"agreement", "agreement", "4: ement matches first, m(agr)=1 fails, ment/ent are not tried"},
		{"geology", "geolog", "1c: y→i; 2 NLTK: logi→log measured on geol (m=1)"},
		{"sized", "size", "1b: ed; iz→ize; 4: ize needs m(s)>1; 5a: siz is cvc"},
		{"meetings", "meet", "1a: s; 1b: ing; m(meet)=1 but eet is not cvc"},
		{"sky", "sky", "NLTK irregular form"},
		{"skies", "sky", "NLTK irregular form"},
		{"dying", "die", "NLTK irregular form"},
		{"news", "news", "NLTK irregular form"},
		{"innings", "inning", "NLTK irregular form"},
		{"Dying", "dy", "NLTK looks irregular forms up before lower-casing; 1b: ing, y after d is a vowel"},
		{"by", "by", "two letters are returned as they are"},
		{"a", "a", "one letter"},
	}
	for _, c := range cases {
		t.Run(c.word, func(t *testing.T) {
			assert.Equal(t, c.want, PorterStem(c.word), c.why)
		})
	}
}

func TestPorterMeasure(t *testing.T) {
	// The examples in Porter (1980) for m=0, 1, 2.
	for word, m := range map[string]int{
		"tr": 0, "ee": 0, "tree": 0, "y": 0, "by": 0,
		"trouble": 1, "oats": 1, "trees": 1, "ivy": 1,
		"troubles": 2, "private": 2, "oaten": 2, "orrery": 2,
	} {
		assert.Equal(t, m, porterWord(word).measure(), word)
	}
}
