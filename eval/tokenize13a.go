package eval

import (
	"regexp"
	"strings"
)

// The 13a tokenizer is sacreBLEU's port of the tokenization inside
// mteval-v13a.pl, the script WMT used to score BLEU. It is the default
// because published BLEU scores assume it: changing one rule changes scores.

// mteval13aRules are the language-dependent regular expressions of
// mteval-v13a, applied in order, each to the whole line.
var mteval13aRules = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Split off ASCII punctuation and symbols except the apostrophe,
	// comma, hyphen and period, which the next rules treat by context:
	// { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +  : ; < = > ? @  /
	{regexp.MustCompile(`([\x{7B}-\x{7E}\x{5B}-\x{60}\x{20}-\x{26}\x{28}-\x{2B}\x{3A}-\x{40}/])`), " ${1} "},
	// Split a period or comma unless a digit precedes it (keeps "3.5").
	{regexp.MustCompile(`([^0-9])([\.,])`), "${1} ${2} "},
	// Split a period or comma unless a digit follows it.
	{regexp.MustCompile(`([\.,])([^0-9])`), " ${1} ${2}"},
	// Split a hyphen that follows a digit (ranges such as "1990-2000").
	{regexp.MustCompile(`([0-9])(-)`), "${1} ${2} "},
}

// Tokenize13a tokenizes one line as sacreBLEU's default "13a" tokenizer
// does: drop "<skipped>", join words hyphenated across a line break, turn
// newlines into spaces, unescape &quot; &amp; &lt; &gt;, pad the line with
// spaces, apply the mteval-v13a punctuation rules, and collapse whitespace.
func Tokenize13a(line string) string {
	line = strings.ReplaceAll(line, "<skipped>", "")
	line = strings.ReplaceAll(line, "-\n", "")
	line = strings.ReplaceAll(line, "\n", " ")
	if strings.Contains(line, "&") {
		// One replacement after another, not a single-pass replacer:
		// "&amp;quot;" must become "&quot;", not a quote mark.
		line = strings.ReplaceAll(line, "&quot;", `"`)
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
	}
	// The padding lets the period rules see a non-digit at both ends, so
	// a sentence-final "1990." is split as mteval-v13a splits it.
	line = " " + line + " "
	for _, rule := range mteval13aRules {
		line = rule.re.ReplaceAllString(line, rule.repl)
	}
	return strings.Join(pyFields(line), " ")
}
