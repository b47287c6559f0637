package data

import (
	"errors"
	"fmt"
	"slices"
)

// Tokenizer turns text into token ids; the bindings package implements it
// with llama.cpp's vocabulary and tests use small deterministic ones.
// Prepare calls it from several goroutines, so it must be safe for
// concurrent use (or set ReadOptions.Workers to 1).
type Tokenizer interface {
	// Tokenize returns the ids of text. addSpecial adds the tokens the
	// model puts around a whole sequence (BOS); parseSpecial turns
	// control-token text such as "<|im_end|>" into its id instead of
	// spelling it out. Encode tokenizes segment by segment, so an
	// implementation must not insert a leading space into each call's text
	// (SentencePiece's add_space_prefix) beyond what the model does once.
	Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error)
	// Detokenize returns the text of ids; tests use it to read masks back.
	Detokenize(ids []int32) (string, error)
}

// Truncation says what Encode does with an example longer than MaxLen.
type Truncation string

// Truncation policies.
const (
	TruncateDrop  Truncation = "drop"  // return ErrTooLong; Prepare skips the example
	TruncateLeft  Truncation = "left"  // drop tokens from the start (after BOS), keeping the answer
	TruncateRight Truncation = "right" // drop tokens from the end
)

// ParseTruncation checks a truncation policy name; "" means drop.
func ParseTruncation(s string) (Truncation, error) {
	switch t := Truncation(s); t {
	case "":
		return TruncateDrop, nil
	case TruncateDrop, TruncateLeft, TruncateRight:
		return t, nil
	}
	return "", fmt.Errorf("unknown truncation %q (want drop, left or right)", s)
}

// Errors Encode returns for examples that cannot be trained on as they are.
var (
	ErrTooLong           = errors.New("example is longer than the maximum length")
	ErrNoTrainableTokens = errors.New("example has no trainable tokens")
)

// IgnoreIndex is the label of masked tokens in Labels, as in PyTorch's
// cross-entropy and Hugging Face's collators.
const IgnoreIndex = -100

// EncodeOptions control Encode.
type EncodeOptions struct {
	MaxLen     int        // maximum tokens including BOS; 0 means no limit
	Truncation Truncation // what to do above MaxLen; "" means drop
	// AddBOS prepends the tokens the tokenizer adds to a sequence (what it
	// returns for empty text with addSpecial), unless the rendered text
	// already starts with them, as some model templates render BOS.
	AddBOS bool
}

// Encoded is a tokenized example: ids and, per id, whether it is a
// training target (the -100-style label mask as booleans).
type Encoded struct {
	IDs  []int32
	Mask []bool
}

// Len is the number of tokens.
func (e Encoded) Len() int { return len(e.IDs) }

// Targets counts the tokens that carry loss.
func (e Encoded) Targets() int {
	n := 0
	for _, m := range e.Mask {
		if m {
			n++
		}
	}
	return n
}

// Labels returns the ids with masked positions set to IgnoreIndex (not
// shifted: position i's label is token i, the loss shifts).
func (e Encoded) Labels() []int32 {
	out := make([]int32, len(e.IDs))
	for i, id := range e.IDs {
		if e.Mask[i] {
			out[i] = id
		} else {
			out[i] = IgnoreIndex
		}
	}
	return out
}

// Encode renders ex with tmpl and tokenizes it into ids and a label mask.
func Encode(ex *Example, tmpl Template, tok Tokenizer, opts EncodeOptions) (Encoded, error) {
	segs, err := tmpl.Render(ex)
	if err != nil {
		return Encoded{}, err
	}
	return EncodeSegments(segs, tok, opts)
}

// EncodeSegments tokenizes rendered segments, such as the segments of a
// prepared example. Each run of segments with the same flags is tokenized
// on its own and the ids concatenated: that is what keeps the mask exact,
// since no token can straddle a trained and a masked segment. (Tokenizing
// the whole text at once could merge characters across a boundary into one
// token whose label would then be ambiguous.)
func EncodeSegments(segs []Segment, tok Tokenizer, opts EncodeOptions) (Encoded, error) {
	var e Encoded
	for i := 0; i < len(segs); {
		j := i + 1
		text := segs[i].Text
		for j < len(segs) && segs[j].Train == segs[i].Train && segs[j].Special == segs[i].Special {
			text += segs[j].Text
			j++
		}
		ids, err := tok.Tokenize(text, false, segs[i].Special)
		if err != nil {
			return Encoded{}, fmt.Errorf("tokenize segment %d: %w", i, err)
		}
		e.IDs = append(e.IDs, ids...)
		for range ids {
			e.Mask = append(e.Mask, segs[i].Train)
		}
		i = j
	}
	keep := 0 // leading tokens truncation must not remove (BOS)
	if opts.AddBOS {
		bos, err := tok.Tokenize("", true, false)
		if err != nil {
			return Encoded{}, fmt.Errorf("tokenize BOS: %w", err)
		}
		if !slices.Equal(e.IDs[:min(len(bos), len(e.IDs))], bos) {
			e.IDs = append(slices.Clone(bos), e.IDs...)
			e.Mask = append(make([]bool, len(bos)), e.Mask...)
		}
		keep = len(bos)
	}
	if opts.MaxLen > 0 && len(e.IDs) > opts.MaxLen {
		switch opts.Truncation {
		case TruncateRight:
			e.IDs, e.Mask = e.IDs[:opts.MaxLen], e.Mask[:opts.MaxLen]
		case TruncateLeft:
			if keep >= opts.MaxLen {
				keep = 0
			}
			cut := len(e.IDs) - (opts.MaxLen - keep)
			e.IDs = append(e.IDs[:keep], e.IDs[cut:]...)
			e.Mask = append(e.Mask[:keep], e.Mask[cut:]...)
		default:
			return e, fmt.Errorf("%w: %d tokens, the maximum is %d", ErrTooLong, len(e.IDs), opts.MaxLen)
		}
	}
	if e.Targets() == 0 {
		return e, ErrNoTrainableTokens
	}
	return e, nil
}
