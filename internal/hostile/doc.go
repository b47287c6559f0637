// Package hostile writes a corpus of malformed and adversarial inputs for every file
// ecotune reads: GGUF models and adapters, safetensors and PEFT folders, data files and
// TOML configurations. Tests write each entry into a temporary directory and check that
// every command refuses it with one clear line (cmd/ecotune's TestHostileInputs) and
// the fuzz targets start from it; nothing large is committed.
//
// Entries are derived from a small valid model the caller passes (the stories260K
// model in testdata/), so each one differs from a working input in one way.
package hostile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Kind says which kind of input an Entry is, and so which commands can meet it.
type Kind string

// Kinds of input.
const (
	KindModel   Kind = "model"   // a GGUF model
	KindAdapter Kind = "adapter" // a GGUF LoRA adapter for the base model
	KindPEFT    Kind = "peft"    // a Hugging Face PEFT adapter folder for the base model
	KindData    Kind = "data"    // a dataset file (any format prepare and train read)
	KindConfig  Kind = "config"  // a TOML run configuration
	KindRun     Kind = "run"     // a training run directory (train --resume)
)

// Part says which part of a model file an entry breaks, for commands that read only
// some of a model: init --vocab takes the tokenizer alone, init --weights the tensors.
type Part string

// Parts of a model file.
const (
	PartFormat  Part = "format"  // the GGUF layout: lengths, counts, offsets, types, truncation
	PartHParams Part = "hparams" // hyper-parameters, alone or against the tensors or vocabulary
	PartTensors Part = "tensors" // a tensor's presence, shape or type
	PartVocab   Part = "vocab"   // the tokenizer's arrays and special token ids
)

// Entry is one hostile input.
type Entry struct {
	Name string // unique within the corpus; used as the file name's stem
	Kind Kind
	Part Part   // for KindModel entries; "" otherwise
	Ext  string // file extension with its dot (".gguf", ".jsonl.gz"); "" for a folder
	// Want is a regular expression the one-line error must match: the field or position
	// the input is wrong at.
	Want string
	// MayPass marks inputs that are odd but well-formed (a bit flip inside a token string
	// or in the weights): a command may accept them, but must still never crash or hang.
	MayPass bool
	// Large marks entries of a megabyte or more, written only when asked: fuzz targets
	// leave them out of their seeds, where every execution would read them whole.
	Large bool
	write func(path string) error
}

// File is the name Write gives the entry inside its directory.
func (e Entry) File() string { return e.Name + e.Ext }

// Write creates the entry as dir/File() and returns that path.
func (e Entry) Write(dir string) (string, error) {
	p := filepath.Join(dir, e.File())
	if err := e.write(p); err != nil {
		return "", fmt.Errorf("hostile: writing %s: %w", e.Name, err)
	}
	return p, nil
}

// bytesEntry is an Entry whose content is b.
func bytesEntry(name string, kind Kind, ext, want string, b []byte) Entry {
	return Entry{Name: name, Kind: kind, Ext: ext, Want: want, write: func(p string) error {
		return os.WriteFile(p, b, 0o644)
	}}
}

// large marks e as Large.
func large(e Entry) Entry {
	e.Large = true
	return e
}

// lazyEntry is an Entry whose content gen makes when it is written.
func lazyEntry(name string, kind Kind, ext, want string, gen func() ([]byte, error)) Entry {
	return Entry{Name: name, Kind: kind, Ext: ext, Want: want, Large: true, write: func(p string) error {
		b, err := gen()
		if err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	}}
}

// mayPass marks e as well-formed enough to be accepted.
func mayPass(e Entry) Entry {
	e.MayPass = true
	return e
}
