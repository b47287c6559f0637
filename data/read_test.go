package data

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// view is the part of an Example the format tests compare.
type view struct {
	Shape Shape
	Line  int
	Row   int
	Key   string
	Msgs  []Message
	Input string
	Text  string
	ID    string
}

func viewOf(e Example) view {
	return view{Shape: e.Shape, Line: e.Source.Line, Row: e.Source.Row, Key: e.Source.Key, Msgs: e.Messages, Input: e.Input, Text: e.Text, ID: e.ID}
}

// skipView is the part of a Skip the tests compare.
type skipView struct {
	Line, Row int
	Reason    Reason
}

func skipViews(skips []Skip) []skipView {
	var out []skipView
	for _, s := range skips {
		out = append(out, skipView{s.Source.Line, s.Source.Row, s.Reason})
	}
	return out
}

type qaRow struct {
	ID       int64  `parquet:"id"`
	Question string `parquet:"question"`
	Answer   string `parquet:"answer"`
}

type turnRow struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

type chatRow struct {
	ID       string    `parquet:"id"`
	Messages []turnRow `parquet:"messages,list"`
	Tags     []string  `parquet:"tags,list"`
}

func parquetBytes[T any](t *testing.T, rows []T) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, parquet.Write(&buf, rows))
	return buf.Bytes()
}

func TestReadFormatsAndShapes(t *testing.T) {
	jsonlQA := []byte(`{"question":"What is CO2?","answer":"Carbon dioxide."}` + "\n")
	tests := []struct {
		name  string
		files map[string][]byte
		opts  ReadOptions
		want  []view
		skips []skipView
	}{{
		name:  "jsonl question/answer",
		files: map[string][]byte{"a.jsonl": jsonlQA},
		want:  []view{{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("What is CO2?", "Carbon dioxide.")}},
	}, {
		name: "jsonl answer aliases, ids and blank lines",
		files: map[string][]byte{"a.jsonl": []byte(
			`{"prompt":"p1","response":"r1","id":"x-1"}` + "\n\n" +
				`{"input":"i2","output":"o2","id":7}` + "\r\n" +
				`{"query":"q3","completion":"c3"}` + "\n" +
				`{"prompt":"p4","completion":"c4"}`)},
		want: []view{
			{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("p1", "r1"), ID: "x-1"},
			{Shape: ShapeQA, Line: 3, Row: 2, Msgs: qa("i2", "o2"), ID: "7"},
			{Shape: ShapeQA, Line: 4, Row: 3, Msgs: qa("q3", "c3")},
			{Shape: ShapeQA, Line: 5, Row: 4, Msgs: qa("p4", "c4")},
		},
	}, {
		name: "alpaca instruction with and without input, system field",
		files: map[string][]byte{"a.jsonl": []byte(
			`{"instruction":"Summarise.","input":"Long text.","output":"Short."}` + "\n" +
				`{"instruction":"Name a gas.","input":"","output":"Methane.","system":"Be brief."}` + "\n")},
		want: []view{
			{Shape: ShapeInstruction, Line: 1, Row: 1, Msgs: qa("Summarise.", "Short."), Input: "Long text."},
			{Shape: ShapeInstruction, Line: 2, Row: 2, Msgs: []Message{{RoleSystem, "Be brief."}, {RoleUser, "Name a gas."}, {RoleAssistant, "Methane."}}},
		},
	}, {
		name: "chat pairs (the original pipeline's format), one exchange per element",
		files: map[string][]byte{"a.jsonl": []byte(
			`{"messages":[{"user":"Hi","assistant":"Hello!"},{"user":"What is ozone?","assistant":"O3."}]}` + "\n")},
		want: []view{{Shape: ShapeChatPairs, Line: 1, Row: 1, Msgs: []Message{
			{RoleUser, "Hi"}, {RoleAssistant, "Hello!"}, {RoleUser, "What is ozone?"}, {RoleAssistant, "O3."}}}},
	}, {
		name: "chat role/content with system turn, OpenAI content parts",
		files: map[string][]byte{"a.jsonl": []byte(
			`{"messages":[{"role":"system","content":"You are green."},{"role":"user","content":[{"type":"text","text":"Why recycle?"}]},{"role":"assistant","content":"To save resources."}]}` + "\n")},
		want: []view{{Shape: ShapeChat, Line: 1, Row: 1, Msgs: []Message{
			{RoleSystem, "You are green."}, {RoleUser, "Why recycle?"}, {RoleAssistant, "To save resources."}}}},
	}, {
		name: "sharegpt",
		files: map[string][]byte{"a.jsonl": []byte(
			`{"conversations":[{"from":"system","value":"S"},{"from":"human","value":"H1"},{"from":"gpt","value":"G1"},{"from":"human","value":"H2"},{"from":"gpt","value":"G2"}]}` + "\n")},
		want: []view{{Shape: ShapeShareGPT, Line: 1, Row: 1, Msgs: []Message{
			{RoleSystem, "S"}, {RoleUser, "H1"}, {RoleAssistant, "G1"}, {RoleUser, "H2"}, {RoleAssistant, "G2"}}}},
	}, {
		name: "TRL conversational prompt/completion",
		files: map[string][]byte{"a.jsonl": []byte(
			`{"prompt":[{"role":"user","content":"Q"}],"completion":[{"role":"assistant","content":"A"}]}` + "\n")},
		want: []view{{Shape: ShapeChat, Line: 1, Row: 1, Msgs: qa("Q", "A")}},
	}, {
		name: "mixed shapes in one JSONL, with text records and bad lines",
		files: map[string][]byte{"mixed.jsonl": []byte(
			`{"question":"Q1","answer":"A1"}` + "\n" +
				`{"instruction":"I2","output":"O2"}` + "\n" +
				`{"text":"Plain text for pre-training."}` + "\n" +
				`{"messages":[{"role":"user","content":"U4"},{"role":"assistant","content":"A4"}]}` + "\n" +
				`{"question":"Q5"` + "\n" +
				`[1,2,3]` + "\n" +
				`{"foo":"bar"}` + "\n" +
				`{"question":"Q8","answer":42}` + "\n" +
				`{"question":"Q9","answer":"   "}` + "\n" +
				`{"question":"Q10"}` + "\n" +
				`{"messages":[{"role":"user","content":"only a question"}]}` + "\n" +
				`{"messages":[{"role":"tool","content":"x"},{"role":"assistant","content":"y"}]}` + "\n")},
		want: []view{
			{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("Q1", "A1")},
			{Shape: ShapeInstruction, Line: 2, Row: 2, Msgs: qa("I2", "O2")},
			{Shape: ShapeText, Line: 3, Row: 3, Text: "Plain text for pre-training."},
			{Shape: ShapeChat, Line: 4, Row: 4, Msgs: qa("U4", "A4")},
		},
		skips: []skipView{
			{5, 5, ReasonMalformedJSON}, {6, 6, ReasonWrongType}, {7, 7, ReasonUnknownShape},
			{8, 8, ReasonWrongType}, {9, 9, ReasonEmptyField}, {10, 10, ReasonMissingField},
			{11, 11, ReasonNoAssistantTurn}, {12, 12, ReasonInvalidRole},
		},
	}, {
		name:  "json array, pretty-printed: each element's own line",
		files: map[string][]byte{"a.json": []byte("[\n  {\"question\": \"Q1\",\n   \"answer\": \"A1\"},\n\n  {\"question\": \"Q2\", \"answer\": \"A2\"},\n  17\n]\n")},
		want: []view{
			{Shape: ShapeQA, Line: 2, Row: 1, Msgs: qa("Q1", "A1")},
			{Shape: ShapeQA, Line: 5, Row: 2, Msgs: qa("Q2", "A2")},
		},
		skips: []skipView{{6, 3, ReasonWrongType}},
	}, {
		name: "json object holding arrays, keys in file order",
		files: map[string][]byte{"a.json": []byte(`{"version": "1.0",
"train": [{"question": "Q1", "answer": "A1"},
          {"question": "Q2", "answer": "A2"}],
"test": [{"question": "Q3", "answer": "A3"}]}`)},
		want: []view{
			{Shape: ShapeQA, Line: 2, Row: 1, Key: "train", Msgs: qa("Q1", "A1")},
			{Shape: ShapeQA, Line: 3, Row: 2, Key: "train", Msgs: qa("Q2", "A2")},
			{Shape: ShapeQA, Line: 4, Row: 1, Key: "test", Msgs: qa("Q3", "A3")},
		},
	}, {
		name:  "json single record object",
		files: map[string][]byte{"a.json": []byte("\n{\n \"messages\": [{\"role\": \"user\", \"content\": \"U\"}, {\"role\": \"assistant\", \"content\": \"A\"}]\n}\n")},
		want:  []view{{Shape: ShapeChat, Line: 2, Row: 1, Msgs: qa("U", "A")}},
	}, {
		name:  "json file that is really JSONL (Hugging Face to_json)",
		files: map[string][]byte{"a.json": []byte(`{"question":"Q1","answer":"A1"}` + "\n" + `{"question":"Q2","answer":"A2"}` + "\n")},
		want: []view{
			{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("Q1", "A1")},
			{Shape: ShapeQA, Line: 2, Row: 2, Msgs: qa("Q2", "A2")},
		},
	}, {
		name: "csv with BOM, quoted commas, quotes and newlines, capitalised header",
		files: map[string][]byte{"a.csv": []byte("\ufeffQuestion,Answer,topic\n" +
			"\"Why, exactly?\",\"Because \"\"reasons\"\".\",x\n" +
			"\"Two\nline question\",\"Answer\r\nwith CRLF\",y\n" +
			"plain,answer,z\n" +
			"short row\n" +
			"\"bad \"quote\",a,b\n" +
			"after,bad,ok\n")},
		want: []view{
			{Shape: ShapeQA, Line: 2, Row: 1, Msgs: qa("Why, exactly?", `Because "reasons".`)},
			{Shape: ShapeQA, Line: 3, Row: 2, Msgs: qa("Two\nline question", "Answer\nwith CRLF")},
			{Shape: ShapeQA, Line: 6, Row: 3, Msgs: qa("plain", "answer")},
			{Shape: ShapeQA, Line: 9, Row: 6, Msgs: qa("after", "bad")},
		},
		skips: []skipView{{7, 4, ReasonMalformedCSV}, {8, 5, ReasonMalformedCSV}},
	}, {
		name: "csv with messages as a JSON string column",
		files: map[string][]byte{"a.csv": []byte("id,messages\n" +
			`1,"[{""role"":""user"",""content"":""U""},{""role"":""assistant"",""content"":""A""}]"` + "\n")},
		want: []view{{Shape: ShapeChat, Line: 2, Row: 1, Msgs: qa("U", "A"), ID: "1"}},
	}, {
		name:  "tsv with an unbalanced quote in a field",
		files: map[string][]byte{"a.tsv": []byte("instruction\tinput\toutput\nSay \"hi\tthere\thello \"world\"\n")},
		want:  []view{{Shape: ShapeInstruction, Line: 2, Row: 1, Msgs: qa(`Say "hi`, `hello "world"`), Input: "there"}},
	}, {
		name:  "unicode: NFD input becomes NFC, zero-width and controls removed",
		files: map[string][]byte{"a.jsonl": []byte(`{"question":"Cafe\u0301 \u200bcr\u00e8me?\u0007","answer":"Oui\u00a0\u00a0 cafe\u0301."}` + "\n")},
		want:  []view{{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("Café crème?", "Oui café.")}},
	}, {
		name:  "HTML tags and entities stripped",
		files: map[string][]byte{"a.jsonl": []byte(`{"question":"<p>What is <b>CO&#8322;</b>?</p>","answer":"Carbon &amp; oxygen &lt;3<br/>gas"}` + "\n")},
		want:  []view{{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("What is CO₂?", "Carbon & oxygen <3\ngas")}},
	}, {
		name:  "field mapping override",
		files: map[string][]byte{"a.jsonl": []byte(`{"q_text":"Q","reply":"A","question":"decoy"}` + "\n")},
		opts:  ReadOptions{Fields: FieldMap{Question: "q_text", Answer: "reply"}},
		want:  []view{{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("Q", "A")}},
	}, {
		name:  "forced shape and default system prompt",
		files: map[string][]byte{"a.jsonl": []byte(`{"text":"t","question":"Q","answer":"A"}` + "\n")},
		opts:  ReadOptions{Shape: ShapeQA, SystemPrompt: "You are an environmental assistant."},
		want:  []view{{Shape: ShapeQA, Line: 1, Row: 1, Msgs: []Message{{RoleSystem, "You are an environmental assistant."}, {RoleUser, "Q"}, {RoleAssistant, "A"}}}},
	}, {
		name:  "one-line file without trailing newline",
		files: map[string][]byte{"a.jsonl": bytes.TrimSpace(jsonlQA)},
		want:  []view{{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("What is CO2?", "Carbon dioxide.")}},
	}, {
		name:  "empty files of every format",
		files: map[string][]byte{"a.jsonl": nil, "b.json": []byte("  \n"), "c.csv": nil, "d.tsv": []byte("question\tanswer\n"), "e.txt": []byte("\n\n")},
	}, {
		name:  "gzip and zstd",
		files: map[string][]byte{"a.jsonl.gz": gzipBytes(t, jsonlQA), "b.jsonl.zst": zstdBytes(t, jsonlQA), "c.csv.gz": gzipBytes(t, []byte("question,answer\nQ,A\n"))},
		want: []view{
			{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("What is CO2?", "Carbon dioxide.")},
			{Shape: ShapeQA, Line: 1, Row: 1, Msgs: qa("What is CO2?", "Carbon dioxide.")},
			{Shape: ShapeQA, Line: 2, Row: 1, Msgs: qa("Q", "A")},
		},
	}, {
		name: "parquet with a messages list-of-struct column and a QA file",
		files: map[string][]byte{
			"a.parquet": parquetBytes(t, []chatRow{
				{ID: "c1", Messages: []turnRow{{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, Tags: []string{"x"}},
				{ID: "c2", Messages: nil},
			}),
			"b.parquet": parquetBytes(t, []qaRow{{ID: 5, Question: "Q", Answer: "A"}}),
		},
		want: []view{
			{Shape: ShapeChat, Row: 1, ID: "c1", Msgs: []Message{{RoleSystem, "S"}, {RoleUser, "U"}, {RoleAssistant, "A"}}},
			{Shape: ShapeQA, Row: 1, ID: "5", Msgs: qa("Q", "A")},
		},
		skips: []skipView{{0, 2, ReasonEmptyField}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				writeFile(t, dir, name, content)
			}
			exs, skips := readAll(t, tc.opts, dir)
			var got []view
			for _, e := range exs {
				v := viewOf(e)
				if tc.want != nil && len(got) < len(tc.want) && tc.want[len(got)].ID == "" {
					v.ID = "" // content-hash ids are checked elsewhere
				}
				got = append(got, v)
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.skips, skipViews(skips), "skips: %v", skips)
		})
	}
}

func TestReadDirectoriesAndGlobs(t *testing.T) {
	dir := t.TempDir()
	line := func(q string) []byte { return []byte(`{"question":"` + q + `","answer":"A"}` + "\n") }
	writeFile(t, dir, "b/2.jsonl", line("b2"))
	writeFile(t, dir, "a.jsonl", line("a"))
	writeFile(t, dir, "b/1.jsonl", line("b1"))
	writeFile(t, dir, "b/deep/x.csv", []byte("question,answer\ncsv,A\n"))
	writeFile(t, dir, "b/README.md", []byte("# dataset card, not data\n"))
	writeFile(t, dir, "b/.hidden.jsonl", line("hidden"))
	writeFile(t, dir, "b/notes.py", []byte("print(1)\n"))
	t.Chdir(dir)

	questions := func(exs []Example) []string {
		var qs []string
		for _, e := range exs {
			qs = append(qs, e.Messages[0].Content)
			assert.False(t, filepath.IsAbs(e.Source.File), e.Source.File)
		}
		return qs
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"directory, recursive and sorted", []string{"."}, []string{"a", "b1", "b2", "csv"}},
		{"argument order does not matter", []string{"b", "a.jsonl"}, []string{"a", "b1", "b2", "csv"}},
		{"glob", []string{"b/*.jsonl"}, []string{"b1", "b2"}},
		{"double-star glob", []string{"**/*.csv"}, []string{"csv"}},
		{"same file twice", []string{"a.jsonl", "./a.jsonl"}, []string{"a"}},
		{"explicit README is read as text", []string{"b/README.md"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exs, _ := readAll(t, ReadOptions{}, tc.args...)
			if tc.want == nil {
				require.Len(t, exs, 1)
				assert.Equal(t, ShapeText, exs[0].Shape)
				return
			}
			assert.Equal(t, tc.want, questions(exs))
		})
	}

	_, _, err := ReadExamples(context.Background(), []string{"missing.jsonl"}, ReadOptions{})
	assert.ErrorContains(t, err, "missing.jsonl")
	_, _, err = ReadExamples(context.Background(), []string{"nothing/*.jsonl"}, ReadOptions{})
	assert.ErrorContains(t, err, "matches no files")
	_, _, err = ReadExamples(context.Background(), []string{"b/notes.py"}, ReadOptions{})
	assert.ErrorContains(t, err, "unknown file type")
}

func TestReadUnreadableFilesAreErrorsNamingThem(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"bad.parquet":       []byte("this is not parquet"),
		"bad.jsonl.gz":      []byte{0x1f, 0x8b, 0, 1, 2, 3},
		"truncated.json":    []byte(`[{"question":"Q","answer":"A"}, {"question":`),
		"not-json.json":     []byte("hello"),
		"broken-array.json": []byte("[\n{\"question\":\"Q\",\"answer\":\"A\"},\n{oops}\n]"),
	} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, dir, name, content)
			_, _, err := ReadExamples(context.Background(), []string{p}, ReadOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), name)
		})
	}
	_, _, err := ReadExamples(context.Background(), []string{filepath.Join(dir, "broken-array.json")}, ReadOptions{})
	assert.ErrorContains(t, err, "line 3")
	if os.Getuid() != 0 { // root reads files whatever their mode
		p := writeFile(t, dir, "locked.jsonl", []byte("{}\n"))
		require.NoError(t, os.Chmod(p, 0))
		_, _, err := ReadExamples(context.Background(), []string{p}, ReadOptions{})
		assert.ErrorContains(t, err, "locked.jsonl")
	}
}

func TestReadTextChunks(t *testing.T) {
	para := func(s string) string { return s + "\n" }
	text := para("First paragraph, line one.") + para("Line two.") + "\n" +
		para("Second paragraph.") + "\n\n" +
		para("Third paragraph is here.") + "\n" +
		para("Fourth.")
	dir := t.TempDir()
	p := writeFile(t, dir, "corpus.md", []byte(text))

	t.Run("by paragraphs", func(t *testing.T) {
		exs, _ := readAll(t, ReadOptions{TextChunkParagraphs: 2}, p)
		require.Len(t, exs, 2)
		assert.Equal(t, "First paragraph, line one.\nLine two.\n\nSecond paragraph.", exs[0].Text)
		assert.Equal(t, 1, exs[0].Source.Line)
		assert.Equal(t, "Third paragraph is here.\n\nFourth.", exs[1].Text)
		assert.Equal(t, 7, exs[1].Source.Line)
	})
	t.Run("by characters", func(t *testing.T) {
		exs, _ := readAll(t, ReadOptions{TextChunkChars: 50}, p)
		var got []string
		for _, e := range exs {
			got = append(got, e.Text)
			assert.LessOrEqual(t, len([]rune(e.Text)), 50)
			assert.Equal(t, ShapeText, e.Shape)
		}
		assert.Equal(t, []string{
			"First paragraph, line one.\nLine two.",
			"Second paragraph.\n\nThird paragraph is here.",
			"Fourth.",
		}, got)
	})
	t.Run("long paragraph is cut at sentence ends", func(t *testing.T) {
		long := ""
		for range 20 {
			long += "This sentence has some words. "
		}
		q := writeFile(t, dir, "long.txt", []byte(long))
		exs, _ := readAll(t, ReadOptions{TextChunkChars: 100}, q)
		require.Greater(t, len(exs), 5)
		for _, e := range exs {
			assert.LessOrEqual(t, len([]rune(e.Text)), 100)
			assert.Regexp(t, `^This sentence.*words\.$`, e.Text)
		}
	})
}
