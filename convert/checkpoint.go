package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/ecotune/ecotune/safetensors"
)

// Checkpoint file names transformers writes.
const (
	SingleWeightsFile = "model.safetensors"
	IndexFile         = "model.safetensors.index.json"
)

// shard is one open safetensors file: its validated header, and a file
// handle for ranged reads so that a tensor never has to be read whole.
type shard struct {
	st *safetensors.File
	f  *os.File
}

// checkpoint is the weights of a Hugging Face folder, across its shards.
type checkpoint struct {
	dir    string
	shards []*shard
	where  map[string]*shard // tensor name → its shard
}

// openCheckpoint opens the shards named by model.safetensors.index.json, or
// model.safetensors, or else every *.safetensors file in dir, and checks that
// each tensor lives where the index says.
func openCheckpoint(dir string) (ck *checkpoint, err error) {
	ck = &checkpoint{dir: dir, where: map[string]*shard{}}
	defer func() {
		if err != nil {
			ck.Close()
		}
	}()
	files, index, err := shardFiles(dir)
	if err != nil {
		return nil, err
	}
	byFile := map[string]*shard{}
	for _, name := range files {
		path := filepath.Join(dir, name)
		st, err := safetensors.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			if index != nil {
				return nil, fmt.Errorf("convert: shard %s listed in %s is missing", path, filepath.Join(dir, IndexFile))
			}
			return nil, fmt.Errorf("convert: %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		f, err := os.Open(path)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("convert: %w", err)
		}
		sh := &shard{st: st, f: f}
		ck.shards = append(ck.shards, sh)
		byFile[name] = sh
		for _, t := range st.Tensors {
			if prev, dup := ck.where[t.Name]; dup {
				return nil, fmt.Errorf("convert: tensor %s is in both %s and %s", t.Name, prev.f.Name(), path)
			}
			ck.where[t.Name] = sh
		}
	}
	for name, file := range index {
		sh := byFile[file]
		if _, ok := sh.st.Tensor(name); !ok {
			return nil, fmt.Errorf("convert: %s: tensor %s is listed in %s but %s has no such tensor", filepath.Join(dir, IndexFile), name, file, sh.f.Name())
		}
	}
	return ck, nil
}

// shardFiles returns the safetensors files of dir and, when there is an
// index, its tensor → file map.
func shardFiles(dir string) ([]string, map[string]string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, nil, fmt.Errorf("convert: %s: %v", filepath.Join(dir, IndexFile), err)
		}
		if len(idx.WeightMap) == 0 {
			return nil, nil, fmt.Errorf("convert: %s: weight_map is missing or empty", filepath.Join(dir, IndexFile))
		}
		var files []string
		for name, f := range idx.WeightMap {
			if f == "" || filepath.Base(f) != f {
				return nil, nil, fmt.Errorf("convert: %s: tensor %s: shard %q is not a file name in the folder", filepath.Join(dir, IndexFile), name, f)
			}
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
		sort.Strings(files)
		return files, idx.WeightMap, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("convert: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SingleWeightsFile)); err == nil {
		return []string{SingleWeightsFile}, nil, nil
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(matches) == 0 {
		return nil, nil, fmt.Errorf("convert: %s has no %s, %s or *.safetensors files", dir, IndexFile, SingleWeightsFile)
	}
	var files []string
	for _, m := range matches {
		files = append(files, filepath.Base(m))
	}
	sort.Strings(files)
	return files, nil, nil
}

// tensor returns a tensor's shard and info.
func (ck *checkpoint) tensor(name string) (*shard, safetensors.TensorInfo, bool) {
	sh, ok := ck.where[name]
	if !ok {
		return nil, safetensors.TensorInfo{}, false
	}
	t, _ := sh.st.Tensor(name)
	return sh, t, true
}

// names returns every tensor name, sorted.
func (ck *checkpoint) names() []string {
	var out []string
	for n := range ck.where {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close closes every shard; it is safe on a nil or closed checkpoint.
func (ck *checkpoint) Close() error {
	if ck == nil {
		return nil
	}
	var errs []error
	for _, sh := range ck.shards {
		errs = append(errs, sh.st.Close(), sh.f.Close())
	}
	ck.shards = nil
	return errors.Join(errs...)
}

// CheckpointFile reports whether a file of a Hugging Face repository (a path
// inside it) belongs to the checkpoint folder Convert reads: config,
// tokenizer files, chat template, index and safetensors at the top level.
func CheckpointFile(name string) bool {
	if filepath.Base(name) != name {
		return false
	}
	switch name {
	case ConfigFile, "generation_config.json", TokenizerJSON, TokenizerModel, TokenizerConfig,
		"special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json", IndexFile:
		return true
	}
	return filepath.Ext(name) == ".safetensors"
}
