package export

import (
	"fmt"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// permutedArchs are the architectures whose HF→GGUF conversion reorders the
// rows of q_proj and k_proj (llama.cpp's LlamaModel.permute), so that ggml's
// RoPE, which rotates adjacent pairs, matches transformers' rotate_half,
// which rotates the two halves of each head. The other architectures here use
// ggml's NeoX RoPE and keep HF's order.
var permutedArchs = map[string]bool{"llama": true}

// headsFor returns how many heads a tensor's rows are permuted in, or 0 when
// its rows keep HF's order: n_head for attn_q and n_head_kv for attn_k of a
// permuted architecture.
func headsFor(arch string, meta *gguf.Metadata, name string) (int, error) {
	if !permutedArchs[arch] {
		return 0, nil
	}
	var key string
	switch {
	case strings.HasSuffix(name, ".attn_q.weight"):
		key = arch + ".attention.head_count"
	case strings.HasSuffix(name, ".attn_k.weight"):
		key = arch + ".attention.head_count_kv"
		if !meta.Has(key) {
			key = arch + ".attention.head_count"
		}
	default:
		return 0, nil
	}
	if n, err := meta.Int(key); err == nil {
		return int(n), nil
	}
	// Per-layer head counts are arrays; the layer is the tensor's block.
	counts, err := meta.Ints(key)
	if err != nil {
		return 0, fmt.Errorf("base model: %w", err)
	}
	var layer int
	if _, err := fmt.Sscanf(name, "blk.%d.", &layer); err != nil || layer < 0 || layer >= len(counts) {
		return 0, fmt.Errorf("base model: %s has %d entries, none for tensor %s", key, len(counts), name)
	}
	return int(counts[layer]), nil
}

// ggufRow returns the GGUF row that HF row f of a q or k projection becomes
// (rows = heads·D): within each head, HF keeps the first halves of the rotated
// pairs in rows [0, D/2) and the second halves in [D/2, D); GGUF interleaves
// them, so HF row h·D + j·D/2 + i is GGUF row h·D + 2i + j.
func ggufRow(f, rows, heads int) int {
	d := rows / heads
	h, r := f/d, f%d
	j, i := r/(d/2), r%(d/2)
	return h*d + 2*i + j
}

// permuteRows reorders the rows (each rowBytes long) of data between HF's and
// GGUF's order for a projection with rows = heads·D rows. toGGUF applies the
// converter's permutation; otherwise it is undone.
func permuteRows(data []byte, rows, rowBytes, heads int, toGGUF bool) ([]byte, error) {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("%d rows are not %d heads of an even size", rows, heads)
	}
	if len(data) != rows*rowBytes {
		return nil, fmt.Errorf("%d bytes are not %d rows of %d", len(data), rows, rowBytes)
	}
	out := make([]byte, len(data))
	for f := range rows {
		g := ggufRow(f, rows, heads)
		src, dst := f, g
		if !toGGUF {
			src, dst = g, f
		}
		copy(out[dst*rowBytes:(dst+1)*rowBytes], data[src*rowBytes:(src+1)*rowBytes])
	}
	return out, nil
}
