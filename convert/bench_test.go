package convert

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/ecotune/ecotune/gguf"
	"github.com/ecotune/ecotune/internal/testenv"
	"github.com/ecotune/ecotune/safetensors"
)

// BenchmarkConvertMemory converts a 2.3 GB sharded BF16 llama checkpoint (24
// layers of a 2048-wide model, five shards, generated row by row so the
// generator itself stays small) and reports the peak resident memory of the
// conversion alone, which must stay under 300 MB whatever the model's size:
// tensors stream through a few megabytes at a time. It needs about 5 GB of
// free disk in the temporary folder and deletes everything afterwards.
// `make bench` runs it; ECOTUNE_CONVERT_BENCH_LAYERS sets another depth.
func BenchmarkConvertMemory(b *testing.B) {
	layers := 24
	if s := os.Getenv("ECOTUNE_CONVERT_BENCH_LAYERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("ECOTUNE_CONVERT_BENCH_LAYERS=%q: want a positive integer", s)
		}
		layers = n
	}
	const E, F, V, H = 2048, 5632, 32000, 16
	dir := b.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	if err := os.MkdirAll(ckpt, 0o755); err != nil {
		b.Fatal(err)
	}
	cfg := map[string]any{"architectures": []string{"LlamaForCausalLM"}, "hidden_size": E, "num_hidden_layers": layers,
		"num_attention_heads": H, "num_key_value_heads": H, "intermediate_size": F, "vocab_size": V,
		"max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(ckpt, ConfigFile), raw, 0o644); err != nil {
		b.Fatal(err)
	}
	vf, err := gguf.Open(testenv.Vocab(b, "llama-spm"))
	if err != nil {
		b.Fatal(err)
	}
	voc, err := readGGUFVocab(vf.Meta)
	vf.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ckpt, TokenizerModel), encodeSPM(voc), 0o644); err != nil {
		b.Fatal(err)
	}

	h := &hparams{embd: E, layers: layers, heads: H, headsKV: H, ff: F, vocab: V, headDim: E / H}
	var all []shardTensor
	var total int64
	for i, tm := range llamaArch.tensors(h) {
		all = append(all, shardTensor{name: tm.hf, dtype: safetensors.BF16, shape: tm.shape, data: pseudoRandomBF16(uint64(i), tm.shape)})
		total += all[len(all)-1].size()
	}
	const shards = 5
	weightMap := map[string]string{}
	per := (len(all) + shards - 1) / shards
	for s := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, shards)
		group := all[s*per : min(len(all), (s+1)*per)]
		for _, t := range group {
			weightMap[t.name] = name
		}
		if err := writeShard(filepath.Join(ckpt, name), group, nil); err != nil {
			b.Fatal(err)
		}
	}
	raw, _ = json.Marshal(map[string]any{"weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(ckpt, IndexFile), raw, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("checkpoint: %d tensors, %.2f GB in %d shards", len(all), float64(total)/1e9, shards)

	out := filepath.Join(dir, "model.gguf")
	for b.Loop() {
		debug.FreeOSMemory()
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Skipf("cannot reset the peak RSS (Linux /proc/self/clear_refs): %v", err)
		}
		sum, err := Convert(context.Background(), Options{Dir: ckpt, Out: out})
		if err != nil {
			b.Fatal(err)
		}
		peak := vmHWM(b)
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(sum.Bytes)/1e9, "GB")
		b.Logf("converted %.2f GB in %d tensors; peak RSS of the conversion %.0f MiB", float64(sum.Bytes)/1e9, sum.Tensors, float64(peak)/(1<<20))
		if peak > 300<<20 {
			b.Errorf("peak RSS %d MiB exceeds 300 MiB", peak>>20)
		}
	}
}

// pseudoRandomBF16 streams a tensor of BF16 values in [-0.5, 0.5) from a
// 64-bit LCG, one row at a time.
func pseudoRandomBF16(seed uint64, shape []int64) func(io.Writer) error {
	return func(w io.Writer) error {
		rows, rowLen := rowShape(shape)
		buf := make([]byte, 2*rowLen)
		x := seed*0x9e3779b97f4a7c15 + 1
		for range rows {
			for i := range rowLen {
				x = x*6364136223846793005 + 1442695040888963407
				// Exponent 0x3e (values around 0.25) and 7 random mantissa bits.
				binary.LittleEndian.PutUint16(buf[2*i:], uint16(x>>63)<<15|0x3e<<7|uint16(x>>56)&0x7f)
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
}

// vmHWM is the process's peak resident memory in bytes since the last reset.
func vmHWM(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Skip("no VmHWM in /proc/self/status")
	return 0
}
