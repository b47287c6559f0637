package hostile

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Runs returns hostile copies of valid, a run directory whose newest checkpoint is
// checkpoint-NEWEST (ecotune train's --out): each breaks one file --resume reads.
func Runs(valid string, newest int) []Entry {
	ck := fmt.Sprintf("checkpoint-%d", newest)
	mutate := func(name, want string, fn func(dir string) error) Entry {
		return Entry{Name: "run-" + name, Kind: KindRun, Want: want, write: func(p string) error {
			if err := copyDir(valid, p); err != nil {
				return err
			}
			return fn(p)
		}}
	}
	editIndex := func(edit func(ix map[string]any)) func(dir string) error {
		return func(dir string) error {
			p := filepath.Join(dir, ck, "index.json")
			var ix map[string]any
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &ix); err != nil {
				return err
			}
			edit(ix)
			out, err := json.Marshal(ix)
			if err != nil {
				return err
			}
			return os.WriteFile(p, out, 0o644)
		}
	}
	firstTensor := func(ix map[string]any) map[string]any {
		return ix["tensors"].([]any)[0].(map[string]any)
	}
	// The first of the optimizer's moments: offsets matter in optimizer.bin only.
	firstMoment := func(ix map[string]any) map[string]any {
		for _, t := range ix["tensors"].([]any) {
			if m := t.(map[string]any); m["file"] == "optimizer.bin" {
				return m
			}
		}
		return firstTensor(ix)
	}
	return []Entry{
		mutate("optimizer-corrupt", `corrupt|crc`, func(dir string) error {
			return flipBytes(filepath.Join(dir, ck, "optimizer.bin"), 100)
		}),
		mutate("optimizer-truncated", `optimizer\.bin`, func(dir string) error {
			return truncateHalf(filepath.Join(dir, ck, "optimizer.bin"))
		}),
		mutate("optimizer-missing", `optimizer\.bin`, func(dir string) error {
			return os.Remove(filepath.Join(dir, ck, "optimizer.bin"))
		}),
		mutate("adapter-empty", `adapter\.gguf`, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, ck, "adapter.gguf"), nil, 0o644)
		}),
		mutate("adapter-corrupt", `corrupt|crc|adapter`, func(dir string) error {
			p := filepath.Join(dir, ck, "adapter.gguf")
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return flipBytes(p, st.Size()-64)
		}),
		mutate("index-truncated", `index\.json`, func(dir string) error {
			return truncateHalf(filepath.Join(dir, ck, "index.json"))
		}),
		mutate("index-not-json", `index\.json`, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, ck, "index.json"), []byte("checkpoint\n"), 0o644)
		}),
		mutate("index-shape-huge", `shape|blk\.0\.attn_q\.weight\.lora_a`, editIndex(func(ix map[string]any) {
			firstTensor(ix)["shape"] = []int64{1 << 40, 1 << 40}
		})),
		mutate("index-offset-huge", `offset|bytes|optimizer\.bin`, editIndex(func(ix map[string]any) {
			firstMoment(ix)["offset"] = int64(1 << 62)
		})),
		mutate("index-bytes-negative", `bytes|blk\.0\.attn_q\.weight\.lora_a`, editIndex(func(ix map[string]any) {
			firstTensor(ix)["bytes"] = -8
		})),
		mutate("index-step-string", `index\.json|step`, editIndex(func(ix map[string]any) { ix["step"] = "two" })),
		mutate("index-order-out-of-range", `order|example`, editIndex(func(ix map[string]any) {
			ix["order"].([]any)[0] = 1 << 40
		})),
		mutate("index-tensors-empty", `tensor|blk`, editIndex(func(ix map[string]any) { ix["tensors"] = []any{} })),
		mutate("config-truncated", `train_config\.json`, func(dir string) error {
			return truncateHalf(filepath.Join(dir, "train_config.json"))
		}),
		mutate("config-wrong-types", `train_config\.json`, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "train_config.json"), []byte(`{"model": 5, "config": "lora"}`), 0o644)
		}),
		mutate("config-missing", `train_config\.json`, func(dir string) error {
			return os.Remove(filepath.Join(dir, "train_config.json"))
		}),
		mutate("metrics-garbage", `metrics\.jsonl`, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte("not a record\n"), 0o644)
		}),
	}
}

// copyDir copies the tree at src to dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// flipBytes inverts four bytes of the file at path from offset off.
func flipBytes(path string, off int64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for i := off; i < off+4 && i < int64(len(b)); i++ {
		b[i] ^= 0xFF
	}
	return os.WriteFile(path, b, 0o644)
}

// truncateHalf cuts the file at path to half its length.
func truncateHalf(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.Truncate(path, st.Size()/2)
}
