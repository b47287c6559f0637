package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/eval"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "evaluate models and score outputs",
		Subcommands: []*cli.Command{
			evalScoreCommand(),
		},
	}
}

func evalScoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "score",
		Usage:     "score existing predictions against references (no model needed)",
		ArgsUsage: " ",
		Description: `Computes exact match, token F1 (SQuAD normalisation), corpus BLEU (as sacreBLEU
computes it by default) and ROUGE-1/2/L/Lsum F-measures (as rouge-score computes them)
of predictions against references. Each JSONL line holds an "id" and a "prediction", or
an "id" and a "reference" (or "references": [...]); lines pair by id, or by position when
ids are absent. One file holding both fields works too. See docs/metrics.md.

Example:
   ecotune eval score --predictions preds.jsonl --references refs.jsonl
   ecotune eval score --predictions both.jsonl --json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "predictions", Aliases: []string{"p"}, Usage: "JSONL with predictions", Required: true},
			&cli.StringFlag{Name: "references", Aliases: []string{"r"}, Usage: "JSONL with references (default: the predictions file)"},
			&cli.BoolFlag{Name: "stem", Usage: "Porter-stem tokens for ROUGE (rouge-score's use_stemmer)"},
			&cli.StringFlag{Name: "tokenize", Value: "13a", Usage: "BLEU tokenizer: 13a, intl, char or none"},
			&cli.BoolFlag{Name: "lowercase", Usage: "lower-case text before BLEU"},
			&cli.BoolFlag{Name: "json", Usage: "print the table as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("eval score takes no arguments (got %q); use --predictions and --references", c.Args().First())
			}
			examples, err := eval.LoadExamples(c.String("predictions"), c.String("references"))
			if err != nil {
				return err
			}
			opts := eval.ScoreOptions{RougeStem: c.Bool("stem")}
			opts.BLEU.Tokenize = eval.BLEUTokenizer(c.String("tokenize"))
			opts.BLEU.Lowercase = c.Bool("lowercase")
			table, err := eval.ScoreExamples(examples, opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(table)
			}
			printTable(c.App.Writer, table)
			return nil
		},
	}
}

// printTable writes a metric table as Markdown.
func printTable(w io.Writer, t eval.Table) {
	fmt.Fprintf(w, "| metric | value |\n| --- | ---: |\n")
	fmt.Fprintf(w, "| examples | %d |\n", t.Examples)
	fmt.Fprintf(w, "| exact match | %.2f |\n", t.ExactMatch)
	fmt.Fprintf(w, "| token F1 | %.2f |\n", t.F1)
	fmt.Fprintf(w, "| BLEU | %.2f |\n", t.BLEU.Score)
	fmt.Fprintf(w, "| ROUGE-1 | %.2f |\n", t.Rouge1)
	fmt.Fprintf(w, "| ROUGE-2 | %.2f |\n", t.Rouge2)
	fmt.Fprintf(w, "| ROUGE-L | %.2f |\n", t.RougeL)
	fmt.Fprintf(w, "| ROUGE-Lsum | %.2f |\n", t.RougeLsum)
}
