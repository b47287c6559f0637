package eval_test

import (
	"fmt"

	"github.com/ecotune/ecotune/eval"
)

func ExampleCorpusBLEU() {
	// sacreBLEU's own test corpus (test/test_bleu.py): two references per
	// segment, default options (13a, exp smoothing).
	hyps := []string{"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."}
	refs := [][]string{
		{"The dog bit the man.", "The dog had bit the man."},
		{"It was not unexpected.", "No one was surprised."},
		{"The man bit him first.", "The man had bitten the dog."},
	}
	score, err := eval.CorpusBLEU(hyps, refs, eval.BLEUOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(score)
	// Output: BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)
}

func ExampleRougeScorer() {
	scorer := eval.RougeScorer{Types: []string{"rouge1", eval.RougeL}, Stem: true}
	scores, err := scorer.Score("The quick brown fox jumps over the lazy dog",
		"The quick brown dog jumps on the log.")
	if err != nil {
		panic(err)
	}
	// Stemmed tokens: target [the quick brown fox jump over the lazi dog],
	// prediction [the quick brown dog jump on the log]. Six unigrams match
	// (P 6/8, R 6/9); the LCS "the quick brown jump the" has 5 (P 5/8, R 5/9).
	fmt.Printf("rouge1 F=%.4f rougeL F=%.4f\n", scores["rouge1"].FMeasure, scores[eval.RougeL].FMeasure)
	// Output: rouge1 F=0.7059 rougeL F=0.5882
}

func ExampleTokenF1() {
	fmt.Printf("%.4f %v\n", eval.TokenF1("the Eiffel Tower", "Eiffel tower, Paris"), eval.ExactMatch("The Eiffel Tower!", "eiffel tower"))
	// Output: 0.8000 1
}
