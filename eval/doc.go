// Package eval scores model outputs against references.
//
// The metric functions reproduce the numbers of the reference tools people
// compare against, so a score printed by ecotune can be put beside a score
// from a paper:
//
//   - ExactMatch and TokenF1 follow SQuAD's official evaluation script
//     (answer normalization, token-bag F1, max over references).
//   - CorpusBLEU, SentenceBLEU and BLEUFromStats follow sacreBLEU 2.x,
//     including its 13a, intl, char and none tokenizers and its smoothing
//     methods.
//   - RougeScorer follows Google's rouge-score package (ROUGE-N, ROUGE-L,
//     ROUGE-Lsum), with PorterStem standing in for NLTK's Porter stemmer.
//   - MeanNLL and Perplexity turn per-token losses into the numbers a
//     training run reports.
//
// Score aggregates everything over a dataset into a Table, and
// LoadExamples reads the JSONL files that "ecotune eval score" takes.
// docs/metrics.md gives the formulas and the exact rules each metric follows.
//
// On top of the metrics, with a model loaded through the bindings package:
//
//   - Generate answers many prompts at once, as parallel sequences of one
//     libllama context, with the outputs of one-at-a-time generation.
//   - ReferenceLoss scores the reference answers' tokens, masked as in
//     training, from libllama's logits.
//   - Evaluate runs a base model and its adapters on the same items and
//     WriteReport writes report.json, report.md and a self-contained
//     report.html ("ecotune eval"; docs/eval.md).
//
// A typical use:
//
//	examples, err := eval.LoadExamples("predictions.jsonl", "references.jsonl")
//	if err != nil {
//		return err
//	}
//	table, err := eval.ScoreExamples(examples, eval.ScoreOptions{})
//	if err != nil {
//		return err
//	}
//	fmt.Printf("EM %.2f  F1 %.2f  %s\n", table.ExactMatch, table.F1, table.BLEU)
//
// The metric functions are pure Go, safe for concurrent use, and keep no
// state between calls. Generate, ReferenceLoss and Evaluate drive a
// bindings.Context, which serializes its callers.
package eval
