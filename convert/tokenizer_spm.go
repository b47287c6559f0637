package convert

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SentencePiece's ModelProto (sentencepiece_model.proto), the fields read here.
const (
	spmPieces     = 1 // repeated SentencePiece
	spmPieceText  = 1
	spmPieceScore = 2
	spmPieceType  = 3
)

// spmPiece is one vocabulary entry of a tokenizer.model.
type spmPiece struct {
	text  string
	score float32
	typ   int32
}

// parseSPM reads the pieces of a serialized ModelProto. Only the wire format
// is needed, not a protobuf library: a piece is field 1 holding a message of
// text (1), score (2, float) and type (3, enum; NORMAL when absent).
func parseSPM(b []byte) ([]spmPiece, error) {
	var pieces []spmPiece
	err := walkProto(b, func(field int, wire int, v uint64, data []byte) error {
		if field != spmPieces || wire != 2 {
			return nil
		}
		p := spmPiece{typ: tokNormal}
		err := walkProto(data, func(f int, w int, v uint64, d []byte) error {
			switch {
			case f == spmPieceText && w == 2:
				p.text = string(d)
			case f == spmPieceScore && w == 5:
				p.score = math.Float32frombits(uint32(v))
			case f == spmPieceType && w == 0:
				if v < 1 || v > 6 {
					return fmt.Errorf("piece %d: type %d is not 1..6", len(pieces), v)
				}
				p.typ = int32(v)
			}
			return nil
		})
		if err != nil {
			return err
		}
		pieces = append(pieces, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(pieces) == 0 {
		return nil, errors.New("no pieces")
	}
	return pieces, nil
}

// walkProto calls fn for each field of a protobuf message: its number, wire
// type, and the value (varint, fixed32, fixed64) or bytes (length-delimited).
func walkProto(b []byte, fn func(field, wire int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("truncated field tag")
		}
		b = b[n:]
		field, wire := int(tag>>3), int(tag&7)
		var v uint64
		var data []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: truncated varint", field)
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return fmt.Errorf("field %d: truncated fixed64", field)
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("field %d: length runs past the end", field)
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return fmt.Errorf("field %d: truncated fixed32", field)
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("field %d: wire type %d is not used by SentencePiece models", field, wire)
		}
		if err := fn(field, wire, v, data); err != nil {
			return err
		}
	}
	return nil
}

// readSPM reads a SentencePiece tokenizer.model, then the added tokens of
// added_tokens.json and tokenizer_config.json's added_tokens_decoder, as
// llama.cpp's converter does.
func readSPM(dir string, vocabSize int) (*vocabulary, error) {
	path := filepath.Join(dir, TokenizerModel)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	pieces, err := parseSPM(raw)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: not a SentencePiece model: %w", path, err)
	}
	n := vocabSize
	if n == 0 {
		n = len(pieces)
	}
	v := &vocabulary{model: "llama", pre: "default", preHow: "SentencePiece"}
	for i, p := range pieces {
		if i >= n {
			break // the converter drops pieces beyond config.json's vocab_size too
		}
		v.tokens = append(v.tokens, p.text)
		v.scores = append(v.scores, p.score)
		v.types = append(v.types, p.typ)
	}
	v.padTo(n)
	set := func(id int, tok string, typ int32) {
		v.tokens[id], v.scores[id], v.types[id] = tok, -1000, typ
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "added_tokens.json")); err == nil {
		var at map[string]int
		if err := json.Unmarshal(raw, &at); err != nil {
			return nil, fmt.Errorf("convert: %s: %v", filepath.Join(dir, "added_tokens.json"), err)
		}
		for tok, id := range at {
			if id >= 0 && id < n {
				set(id, tok, tokUserDefined)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("convert: %w", err)
	}
	tc, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, err
	}
	dec, err := tc.addedTokensDecoder()
	if err != nil {
		return nil, err
	}
	sort.Slice(dec, func(i, j int) bool { return dec[i].ID < dec[j].ID })
	for _, a := range dec {
		if a.ID >= n {
			continue
		}
		if a.Special || looksSpecial(a.Content) {
			set(a.ID, a.Content, tokControl)
		} else {
			set(a.ID, strings.ReplaceAll(a.Content, "▁", " "), tokUserDefined)
		}
		v.added = append(v.added, a)
	}
	return v, nil
}
