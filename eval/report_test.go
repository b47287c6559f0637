package eval

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecotune/ecotune/bindings"
	"github.com/ecotune/ecotune/gguf"
)

// writeStoriesAdapter writes a random rank-4 LoRA adapter for stories260K's output
// projection (output.weight, 64 → 512) in llama.cpp's adapter format.
func writeStoriesAdapter(t testing.TB, path string, seed uint64) {
	t.Helper()
	const nIn, nOut, rank = 64, 512, 4
	rng := rand.New(rand.NewPCG(seed, 1))
	f32 := func(n int) []byte {
		b := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(0.3*rng.NormFloat64())))
		}
		return b
	}
	meta := &gguf.Metadata{}
	meta.Set("general.architecture", gguf.ValueOf("llama"))
	meta.Set("general.type", gguf.ValueOf("adapter"))
	meta.Set("adapter.type", gguf.ValueOf("lora"))
	meta.Set("adapter.lora.alpha", gguf.ValueOf(float32(rank)))
	b := &gguf.Builder{Meta: meta, Tensors: []gguf.Tensor{
		{TensorInfo: gguf.TensorInfo{Name: "output.weight.lora_a", Dims: []int64{nIn, rank}, Type: gguf.TypeF32}, Data: gguf.DataBytes(f32(nIn * rank))},
		{TensorInfo: gguf.TensorInfo{Name: "output.weight.lora_b", Dims: []int64{rank, nOut}, Type: gguf.TypeF32}, Data: gguf.DataBytes(f32(rank * nOut))},
	}}
	require.NoError(t, b.WriteFile(path))
}

// textAlone generates from prompt on a fresh single-sequence context with adapters.
func textAlone(t *testing.T, m *bindings.Model, adapters []bindings.AdapterScale, prompt string, maxTokens int) string {
	t.Helper()
	c := newContext(t, m, bindings.ContextOptions{NCtx: 256})
	require.NoError(t, c.SetAdapters(adapters))
	s, err := bindings.GenerateText(context.Background(), c, prompt, bindings.GenerateOptions{MaxTokens: maxTokens})
	require.NoError(t, err)
	return s
}

// lossItem tokenizes prompt and reference separately, as training encodes segments,
// with targets on the reference.
func lossItem(t *testing.T, m *bindings.Model, prompt, ref string) *LossSequence {
	t.Helper()
	p, err := m.Tokenize(prompt, true, true)
	require.NoError(t, err)
	r, err := m.Tokenize(ref, false, false)
	require.NoError(t, err)
	mask := make([]bool, len(p)+len(r))
	for i := len(p); i < len(mask); i++ {
		mask[i] = true
	}
	return &LossSequence{IDs: append(p, r...), Mask: mask}
}

func TestEvaluateStories(t *testing.T) {
	m := loadStories(t)
	adapterPath := filepath.Join(t.TempDir(), "adapter.gguf")
	writeStoriesAdapter(t, adapterPath, 3)
	a, err := bindings.LoadAdapter(m, adapterPath)
	require.NoError(t, err)
	adapted := []bindings.AdapterScale{{Adapter: a, Scale: 1}}

	const maxTokens = 16
	prompts := []string{"Once upon a time", "The dog ran to the park", "One day", "Mom said", "The cat"}
	var items []Item
	for i, p := range prompts {
		// References: the base model's own answer for the first two (so base scores 100
		// there), the adapter's for the third, an unrelated sentence for the rest.
		var ref string
		switch {
		case i < 2:
			ref = textAlone(t, m, nil, p, maxTokens)
		case i == 2:
			ref = textAlone(t, m, adapted, p, maxTokens)
		default:
			ref = "the green tree was very tall."
		}
		items = append(items, Item{ID: p, Prompt: p, References: []string{ref}, Loss: lossItem(t, m, p, ref)})
	}
	systems := []System{{Name: "base"}, {Name: "adapter", Adapters: adapted}}
	rep, err := Evaluate(context.Background(), m, systems, items, EvaluateOptions{
		Generate: GenerateOptions{MaxTokens: maxTokens, Parallel: 3}, SeqLen: 256, Threads: 1})
	require.NoError(t, err)
	require.Len(t, rep.Systems, 2)
	require.Len(t, rep.Examples, len(items))

	// Each system's answers are those of one-at-a-time generation with its adapters,
	// and its table is Score over them.
	for si, sys := range systems {
		preds := make([]string, len(items))
		refs := make([][]string, len(items))
		for i, it := range items {
			preds[i] = textAlone(t, m, sys.Adapters, it.Prompt, maxTokens)
			refs[i] = it.References
		}
		want, err := Score(preds, refs, ScoreOptions{})
		require.NoError(t, err)
		assert.Equal(t, want, rep.Systems[si].Table, "system %s", sys.Name)
		for _, e := range rep.Examples {
			assert.Equal(t, preds[e.Index], e.Outputs[si].Text, "system %s example %d", sys.Name, e.Index)
		}
	}
	assert.Equal(t, []string{adapterPath}, rep.Systems[1].Adapters)
	assert.NotEqual(t, rep.Systems[0].Table, rep.Systems[1].Table, "the adapter changes the answers")

	// Losses: the base system's matches token-by-token decoding of each reference.
	var sum, spread float64
	var n int
	for _, it := range items {
		alone, d := tokenLossesAlone(t, m, it.Loss.IDs)
		spread = math.Max(spread, d)
		for i, target := range it.Loss.Mask {
			if target {
				sum += alone[i]
				n++
			}
		}
	}
	require.NotNil(t, rep.Systems[0].Loss)
	assert.Equal(t, n, rep.Systems[0].Loss.Tokens)
	// Each token's loss can differ by twice the spread of libllama's logits between its
	// batchings (pathSpread), and so can their mean; the perplexity by its own factor
	// e^(2·spread) - 1.
	mean := sum / float64(n)
	assert.InDelta(t, mean, rep.Systems[0].Loss.MeanNLL, 2*spread)
	assert.InDelta(t, math.Exp(mean), rep.Systems[0].Loss.Perplexity, math.Exp(mean)*math.Expm1(2*spread))
	// The base model predicts its own greedy answers better than the random adapter does.
	require.NotNil(t, rep.Systems[1].Loss)
	assert.Greater(t, rep.Systems[1].Loss.MeanNLL, rep.Systems[0].Loss.MeanNLL)

	// Deltas and their order: best gain first, worst regression last.
	for k, e := range rep.Examples {
		assert.InDelta(t, 100*(e.Outputs[1].Scores.F1-e.Outputs[0].Scores.F1), e.Delta, 1e-9)
		if k > 0 {
			assert.GreaterOrEqual(t, rep.Examples[k-1].Delta, e.Delta)
		}
	}
	assert.Equal(t, 2, rep.Examples[0].Index, "the example whose reference is the adapter's answer gains most")
	assert.Equal(t, 1.0, rep.Examples[0].Outputs[1].Scores.ExactMatch)
	assert.Less(t, rep.Examples[len(items)-1].Delta, 0.0, "a base-model answer is lost")

	require.NoError(t, WriteReport(t.TempDir(), rep))
}

// sampleReport is a hand-made report with two systems, a training log and text that
// needs escaping, for the rendering tests.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	dir := t.TempDir()
	metrics := filepath.Join(dir, "metrics.jsonl")
	var lines []string
	for s := 1; s <= 40; s++ {
		lr := 1e-3 * math.Min(1, float64(s)/5) * (0.5 + 0.5*math.Cos(math.Pi*float64(s)/40))
		rec, _ := json.Marshal(LogRecord{Kind: "train", Step: s, Loss: 3*math.Exp(-float64(s)/15) + 1, LR: lr, TokensPerSec: 5000 + 100*float64(s%7), ElapsedSec: float64(s)})
		lines = append(lines, string(rec))
		if s%10 == 0 {
			rec, _ := json.Marshal(LogRecord{Kind: "eval", Step: s, Loss: 3*math.Exp(-float64(s)/18) + 1.2})
			lines = append(lines, string(rec))
		}
	}
	require.NoError(t, os.WriteFile(metrics, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	log, err := ReadTrainingLog(metrics)
	require.NoError(t, err)

	preds := [][]string{
		{"The ozone layer absorbs UV.", "Carbon dioxide", "<b>bold</b> & more", "no idea"},
		{"The ozone layer absorbs ultraviolet radiation.", "carbon dioxide", "<b>bold</b> & more", "nothing"},
	}
	items := []Item{
		{ID: "q1", Prompt: "What does the ozone layer do?", References: []string{"The ozone layer absorbs ultraviolet radiation."}},
		{ID: "q2", Prompt: "Which gas do plants take in?", References: []string{"carbon dioxide"}},
		{ID: "q3", Prompt: "Escape <this> & \"that\"", References: []string{"<b>bold</b> & more"}},
		{ID: "q4", Prompt: "Multi\nline\nprompt", References: []string{"methane", "CH4"}},
	}
	rep := &Report{Model: "base.gguf", Data: "test.jsonl", Training: log, Options: ReportSettings{MaxTokens: 64, Parallel: 4}}
	rep.Examples = make([]ExampleResult, len(items))
	for si, name := range []string{"base", "adapter"} {
		refs := make([][]string, len(items))
		for i, it := range items {
			refs[i] = it.References
		}
		table, err := Score(preds[si], refs, ScoreOptions{})
		require.NoError(t, err)
		res := SystemResult{Name: name, Table: table, TokensPerSec: 1234,
			Loss: &LossSummary{MeanNLL: 2.5 - float64(si), Perplexity: math.Exp(2.5 - float64(si)), Tokens: 40}}
		if si == 1 {
			res.Adapters = []string{"run/adapter.gguf"}
		}
		rep.Systems = append(rep.Systems, res)
		for i, it := range items {
			sc, err := ScoreExample(preds[si][i], it.References, ScoreOptions{})
			require.NoError(t, err)
			e := &rep.Examples[i]
			e.Index, e.ID, e.Prompt, e.References = i, it.ID, it.Prompt, it.References
			e.Outputs = append(e.Outputs, Output{Text: preds[si][i], Scores: sc})
		}
	}
	for i := range rep.Examples {
		rep.Examples[i].Delta = 100 * (rep.Examples[i].Outputs[1].Scores.F1 - rep.Examples[i].Outputs[0].Scores.F1)
	}
	SortExamples(rep.Examples)
	return rep
}

func TestReadTrainingLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "metrics.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(`{"kind":"train","step":1,"loss":2.5,"lr":0.001,"tokens_per_sec":900,"elapsed_s":0.1}
{"kind":"eval","step":1,"loss":2.7,"elapsed_s":0.2}

{"kind":"future","step":2,"loss":1}
{"kind":"train","step":2,"loss":2.25,"lr":0.0005,"elapsed_s":0.3}`), 0o644))
	log, err := ReadTrainingLog(p)
	require.NoError(t, err)
	require.Len(t, log.Train, 2)
	require.Len(t, log.Eval, 1)
	assert.Equal(t, 2.25, log.Train[1].Loss)
	assert.Equal(t, 0.0005, log.Train[1].LR)
	charts := log.Charts()
	require.Len(t, charts, 3, "loss, learning rate, throughput")
	assert.Len(t, charts[0].Series, 2)

	require.NoError(t, os.WriteFile(p, []byte("{\"kind\":\"train\",\"step\":1,\"loss\":2}\nnot json\n"), 0o644))
	_, err = ReadTrainingLog(p)
	require.ErrorIs(t, err, ErrBadRecord)
	assert.Contains(t, err.Error(), "metrics.jsonl:2:")

	svg := filepath.Join(t.TempDir(), "loss.svg")
	require.Error(t, WriteLossSVG(p, svg))
}

func TestWriteReport(t *testing.T) {
	rep := sampleReport(t)
	dir := t.TempDir()
	require.NoError(t, WriteReport(dir, rep))

	// report.json round-trips.
	js, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	var back Report
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, rep.Systems, back.Systems)
	assert.Equal(t, rep.Examples, back.Examples)

	// Order: q1 gains (F1 from partial to 100), q4 loses nothing (0 → 0), q2/q3 equal.
	assert.Equal(t, "q1", rep.Examples[0].ID)
	assert.Greater(t, rep.Examples[0].Delta, 0.0)

	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "| system | EM | F1 | BLEU | ROUGE-1 | ROUGE-2 | ROUGE-L | loss | perplexity | tokens/s |")
	assert.Contains(t, string(md), "| adapter (run/adapter.gguf) | 75.00 (+25.00) |", "EM: base matches q2 and q3, the adapter q1 too")
	assert.Contains(t, string(md), "| 1.50 (-1.00) |", "loss row with its change")
	assert.Contains(t, string(md), "## Largest gains")
	assert.Contains(t, string(md), "training loss 3.8")
	assert.Contains(t, string(md), "| base | &lt;b&gt;bold&lt;/b&gt; &amp; more |", "no raw HTML in Markdown")

	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	require.NoError(t, err)
	h := string(html)
	assert.Equal(t, 2, strings.Count(h, `<tr class="system">`))
	assert.Equal(t, 3, strings.Count(h, "<svg "), "loss, learning rate and throughput charts")
	assert.Contains(t, h, "&lt;b&gt;bold&lt;/b&gt; &amp; more", "answers are escaped")
	assert.NotContains(t, h, "<b>bold</b>")
	assert.NotContains(t, h, "<script")
	assert.NotContains(t, h, "<link")
	assert.NotContains(t, h, "@import")
	assert.NotContains(t, strings.ReplaceAll(h, `xmlns="http://www.w3.org/2000/svg"`, ""), "http", "no network references")
}
