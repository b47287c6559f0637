package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ManifestName is the file name of the manifest in an output directory.
const ManifestName = "manifest.json"

// Manifest describes a Prepare run completely enough to reproduce it: the
// inputs with their SHA-256, every option, the counts per split and per
// skip reason, and the hashes of the outputs. It holds no timestamps or
// absolute output paths, so identical runs write identical manifests.
type Manifest struct {
	Tool      string          `json:"tool"`
	Version   string          `json:"version"`
	Template  string          `json:"template"`
	Seed      uint64          `json:"seed"`
	Fractions Fractions       `json:"fractions"`
	Dedup     Dedup           `json:"dedup"`
	Augment   int             `json:"augment"`
	Options   ManifestOptions `json:"options"`
	Inputs    []InputInfo     `json:"inputs"`

	Records   int            `json:"records"`   // records read, valid or not
	Kept      int            `json:"kept"`      // records written (Records minus skipped)
	Augmented int            `json:"augmented"` // augmented variants written (train only)
	Counts    SplitCounts    `json:"counts"`    // lines per split file, augmented included
	Skipped   map[Reason]int `json:"skipped"`   // skipped records per reason; the records are in skipped.jsonl
	Outputs   []OutputInfo   `json:"outputs"`
}

// ManifestOptions records the reading and encoding options of a run.
type ManifestOptions struct {
	Format              Format          `json:"format,omitempty"`
	Shape               Shape           `json:"shape,omitempty"`
	Fields              FieldMap        `json:"fields"`
	SystemPrompt        string          `json:"system_prompt,omitempty"`
	KeepHTML            bool            `json:"keep_html"`
	TextChunkChars      int             `json:"text_chunk_chars,omitempty"`
	TextChunkParagraphs int             `json:"text_chunk_paragraphs,omitempty"`
	TemplateOptions     TemplateOptions `json:"template_options"`
	MaxTokens           int             `json:"max_tokens,omitempty"`
	Truncation          Truncation      `json:"truncation,omitempty"`
	AddBOS              bool            `json:"add_bos"`
}

// InputInfo identifies one input file by name and content hash.
type InputInfo struct {
	Path        string      `json:"path"`
	Format      Format      `json:"format"`
	Compression Compression `json:"compression,omitempty"`
	Bytes       int64       `json:"bytes"`
	SHA256      string      `json:"sha256"`
	Records     int         `json:"records"`
}

// OutputInfo identifies one output file.
type OutputInfo struct {
	File   string `json:"file"`
	Lines  int    `json:"lines"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// SplitCounts counts examples per split.
type SplitCounts struct {
	Train int `json:"train"`
	Val   int `json:"val"`
	Test  int `json:"test"`
}

func (c *SplitCounts) add(s Split, n int) {
	switch s {
	case SplitTrain:
		c.Train += n
	case SplitVal:
		c.Val += n
	case SplitTest:
		c.Test += n
	}
}

// Total is the number of examples in all splits.
func (c SplitCounts) Total() int { return c.Train + c.Val + c.Test }

// SkippedTotal is the number of skipped records.
func (m *Manifest) SkippedTotal() int {
	n := 0
	for _, c := range m.Skipped {
		n += c
	}
	return n
}

// LoadManifest reads the manifest of a prepared output directory.
func LoadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("load manifest: %w (run ecotune prepare first)", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("load manifest %s: %w", filepath.Join(dir, ManifestName), err)
	}
	return m, nil
}

// write stores the manifest atomically as indented JSON; map keys are
// sorted by encoding/json, so the bytes are deterministic.
func (m *Manifest) write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ManifestName), append(b, '\n'))
}
