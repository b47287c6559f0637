package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFlagsFirst(t *testing.T) {
	notFound := false
	app := newApp(nil, nil, &notFound)
	cases := []struct{ in, want []string }{
		{[]string{"ecotune", "prepare", "data", "-o", "out", "--template", "alpaca", "-q"},
			[]string{"ecotune", "prepare", "-o", "out", "--template", "alpaca", "-q", "data"}},
		{[]string{"ecotune", "--verbose", "prepare", "a", "--out=x", "b"},
			[]string{"ecotune", "--verbose", "prepare", "--out=x", "a", "b"}},
		{[]string{"ecotune", "prepare", "-o", "out", "--", "-odd-name"},
			[]string{"ecotune", "prepare", "-o", "out", "--", "-odd-name"}},
		{[]string{"ecotune", "eval", "score", "p.jsonl", "--predictions", "x"},
			[]string{"ecotune", "eval", "score", "--predictions", "x", "p.jsonl"}},
		{[]string{"ecotune", "no-such", "x", "-y"}, []string{"ecotune", "no-such", "x", "-y"}},
		{[]string{"ecotune"}, []string{"ecotune"}},
		{[]string{"ecotune", "prepare", "data", "--te", "--generate-bash-completion"},
			[]string{"ecotune", "prepare", "--te", "data", "--generate-bash-completion"}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, flagsFirst(app, c.in), "%v", c.in)
	}
}
