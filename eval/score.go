package eval

import "fmt"

// Example is one prediction with its references.
type Example struct {
	// ID identifies the example; may be empty.
	ID string `json:"id,omitempty"`
	// Prediction is the model's output.
	Prediction string `json:"prediction"`
	// References are the acceptable answers; at least one.
	References []string `json:"references"`
}

// ScoreOptions configure Score. The zero value uses each reference
// implementation's defaults: sacreBLEU's corpus BLEU, rouge-score without
// stemming.
type ScoreOptions struct {
	// BLEU configures the corpus BLEU.
	BLEU BLEUOptions `json:"bleu"`
	// RougeStem enables Porter stemming for ROUGE.
	RougeStem bool `json:"rouge_stem,omitempty"`
}

// ExampleScore holds the per-example metrics Score averages, each in 0..1
// except SentenceBLEU, which is on BLEU's 0..100 scale.
type ExampleScore struct {
	// ExactMatch is 1 if the prediction matches a reference after SQuAD
	// normalization, else 0.
	ExactMatch float64 `json:"exact_match"`
	// F1 is the best SQuAD token F1 over the references.
	F1 float64 `json:"f1"`
	// SentenceBLEU is SentenceBLEU with the options' tokenizer and
	// smoothing.
	SentenceBLEU float64 `json:"sentence_bleu"`
	// Rouge1 is the best ROUGE-1 over the references (by F-measure).
	Rouge1 RougeScore `json:"rouge1"`
	// Rouge2 is the best ROUGE-2 over the references.
	Rouge2 RougeScore `json:"rouge2"`
	// RougeL is the best ROUGE-L over the references.
	RougeL RougeScore `json:"rougeL"`
	// RougeLsum is the best ROUGE-Lsum over the references.
	RougeLsum RougeScore `json:"rougeLsum"`
}

// Table is the metrics of a dataset. Every metric is a percentage
// (0..100), the scale SQuAD's script and sacreBLEU print; ROUGE values are
// the mean per-example F-measure times 100.
type Table struct {
	// Examples is the number of scored examples.
	Examples int `json:"examples"`
	// References is the total number of references.
	References int `json:"references"`
	// EmptyPredictions counts predictions that are empty or whitespace.
	EmptyPredictions int `json:"empty_predictions"`
	// ExactMatches counts examples whose ExactMatch is 1.
	ExactMatches int `json:"exact_matches"`
	// ExactMatch is the mean exact match, in percent.
	ExactMatch float64 `json:"exact_match"`
	// F1 is the mean token F1, in percent.
	F1 float64 `json:"f1"`
	// BLEU is corpus BLEU over all examples, with its details.
	BLEU BLEUScore `json:"bleu"`
	// Rouge1 is the mean ROUGE-1 F-measure, in percent.
	Rouge1 float64 `json:"rouge1"`
	// Rouge2 is the mean ROUGE-2 F-measure, in percent.
	Rouge2 float64 `json:"rouge2"`
	// RougeL is the mean ROUGE-L F-measure, in percent.
	RougeL float64 `json:"rougeL"`
	// RougeLsum is the mean ROUGE-Lsum F-measure, in percent.
	RougeLsum float64 `json:"rougeLsum"`
}

// ScoreExample computes the per-example metrics of one prediction.
func ScoreExample(prediction string, references []string, opts ScoreOptions) (ExampleScore, error) {
	if len(references) == 0 {
		return ExampleScore{}, ErrNoReferences
	}
	bleu, err := SentenceBLEU(prediction, references, opts.BLEU)
	if err != nil {
		return ExampleScore{}, err
	}
	scorer := RougeScorer{Types: []string{"rouge1", "rouge2", RougeL, RougeLsum}, Stem: opts.RougeStem}
	rouge, err := scorer.ScoreMulti(references, prediction)
	if err != nil {
		return ExampleScore{}, err
	}
	return ExampleScore{
		ExactMatch:   ExactMatch(prediction, references...),
		F1:           TokenF1(prediction, references...),
		SentenceBLEU: bleu.Score,
		Rouge1:       rouge["rouge1"],
		Rouge2:       rouge["rouge2"],
		RougeL:       rouge[RougeL],
		RougeLsum:    rouge[RougeLsum],
	}, nil
}

// Score computes the metrics table of a dataset: predictions[i] is scored
// against references[i]. EM, F1 and ROUGE are averaged over examples;
// BLEU is corpus BLEU, which sums n-gram statistics over all examples
// before dividing, so it is not the mean of sentence BLEU.
func Score(predictions []string, references [][]string, opts ScoreOptions) (Table, error) {
	if len(predictions) == 0 {
		return Table{}, fmt.Errorf("score: %w", ErrEmptyCorpus)
	}
	if len(references) != len(predictions) {
		return Table{}, fmt.Errorf("score: %d predictions but %d reference lists", len(predictions), len(references))
	}
	bleu, err := CorpusBLEU(predictions, references, opts.BLEU)
	if err != nil {
		return Table{}, fmt.Errorf("score: %w", err)
	}
	t := Table{Examples: len(predictions), BLEU: bleu}
	var em, f1, r1, r2, rl, rlsum float64
	for i, pred := range predictions {
		ex, err := ScoreExample(pred, references[i], opts)
		if err != nil {
			return Table{}, fmt.Errorf("score: example %d: %w", i, err)
		}
		t.References += len(references[i])
		if len(pyFields(pred)) == 0 {
			t.EmptyPredictions++
		}
		if ex.ExactMatch == 1 {
			t.ExactMatches++
		}
		em += ex.ExactMatch
		f1 += ex.F1
		r1 += ex.Rouge1.FMeasure
		r2 += ex.Rouge2.FMeasure
		rl += ex.RougeL.FMeasure
		rlsum += ex.RougeLsum.FMeasure
	}
	n := float64(len(predictions))
	t.ExactMatch = 100 * em / n
	t.F1 = 100 * f1 / n
	t.Rouge1 = 100 * r1 / n
	t.Rouge2 = 100 * r2 / n
	t.RougeL = 100 * rl / n
	t.RougeLsum = 100 * rlsum / n
	return t, nil
}

// ScoreExamples is Score over loaded examples.
func ScoreExamples(examples []Example, opts ScoreOptions) (Table, error) {
	preds := make([]string, len(examples))
	refs := make([][]string, len(examples))
	for i, ex := range examples {
		preds[i] = ex.Prediction
		refs[i] = ex.References
	}
	return Score(preds, refs, opts)
}
