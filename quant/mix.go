package quant

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ecotune/ecotune/gguf"
)

// This file ports llama-quantize's per-tensor type choice (src/llama-quant.cpp
// at the pinned llama.cpp: tensor_allows_quantization, llama_tensor_get_type,
// llama_tensor_get_type_impl, tensor_type_fallback) for the file types of
// fileTypes, without an importance matrix or per-tensor overrides. Branches
// for other file types are left out; the order of the remaining ones is
// kept, because the C++ if/else chains depend on it.

// category is llama-quant.cpp's tensor_category: a broad role read from the name.
type category int

const (
	catOther category = iota
	catTokenEmbd
	catAttnQ
	catAttnV
	catAttnK
	catAttnQKV
	catAttnKVB
	catAttnOutput
	catFFNUp
	catFFNGate
	catFFNDown
	catOutput
)

func tensorCategory(name string) category {
	switch {
	case name == "output.weight":
		return catOutput
	case name == "token_embd.weight" || name == "per_layer_token_embd.weight":
		return catTokenEmbd
	case strings.Contains(name, "attn_qkv.weight"):
		return catAttnQKV
	case strings.Contains(name, "attn_kv_b.weight"):
		return catAttnKVB
	case strings.Contains(name, "attn_v.weight"):
		return catAttnV
	case strings.Contains(name, "attn_k.weight"):
		return catAttnK
	case strings.Contains(name, "attn_q.weight"):
		return catAttnQ
	case strings.Contains(name, "attn_output.weight"):
		return catAttnOutput
	case strings.Contains(name, "ffn_up"):
		return catFFNUp
	case strings.Contains(name, "ffn_gate"):
		return catFFNGate
	case strings.Contains(name, "ffn_down"):
		return catFFNDown
	}
	return catOther
}

// isAttnV reports the categories llama.cpp treats as "attention V-like", the
// most sensitive to quantization.
func (c category) isAttnV() bool { return c == catAttnV || c == catAttnQKV || c == catAttnKVB }

// nDims is ggml_n_dims: trailing dimensions of size 1 do not count, at least 1.
func nDims(dims []int64) int {
	for i := len(dims) - 1; i >= 1; i-- {
		if dims[i] > 1 {
			return i + 1
		}
	}
	return 1
}

// noQuantSubstrings are the name fragments tensor_allows_quantization excludes.
var noQuantSubstrings = []string{
	"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
	"per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight",
	"indexer.k_proj.weight", "indexer.q_proj.weight",
	"time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
	"time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
	"time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
	"time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
	"attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
	".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
}

// allowsQuantization is tensor_allows_quantization: only weights of at least
// two dimensions, never norms, positional embeddings and a list of small
// special tensors.
func allowsQuantization(t gguf.TensorInfo) bool {
	if nDims(t.Dims) < 2 || !strings.HasSuffix(t.Name, "weight") {
		return false
	}
	if t.Name == "position_embd.weight" || t.Name == "token_types.weight" {
		return false
	}
	for _, s := range noQuantSubstrings {
		if strings.Contains(t.Name, s) {
			return false
		}
	}
	return true
}

// hparams are the model facts the mix rules look at.
type hparams struct {
	arch    string
	nLayer  int
	nHead   int // of layer 0
	nHeadKV int // of layer 0
	nExpert int
	is70B   bool // llama.cpp's LLM_TYPE_70B, which gives attn_v more bits
}

func (h hparams) nGQA() int {
	if h.nHeadKV == 0 {
		return 0
	}
	return h.nHead / h.nHeadKV
}

// readHparams reads what the mix rules need from a model's metadata.
func readHparams(m *gguf.Metadata) (hparams, error) {
	var h hparams
	arch, err := m.String("general.architecture")
	if err != nil {
		return h, fmt.Errorf("quant: %w", err)
	}
	h.arch = arch
	n, err := m.Int(arch + ".block_count")
	if err != nil {
		return h, fmt.Errorf("quant: %w", err)
	}
	h.nLayer = int(n)
	first := func(key string) int {
		if v, err := m.Int(key); err == nil {
			return int(v)
		}
		if vs, err := m.Ints(key); err == nil && len(vs) > 0 {
			return int(vs[0])
		}
		return 0
	}
	h.nHead = first(arch + ".attention.head_count")
	h.nHeadKV = h.nHead
	if m.Has(arch + ".attention.head_count_kv") {
		h.nHeadKV = first(arch + ".attention.head_count_kv")
	}
	h.nExpert = first(arch + ".expert_count")
	// The architectures whose load_arch_hparams name an 80-layer (jais2: 68)
	// model LLM_TYPE_70B.
	switch arch {
	case "llama":
		h.is70B = h.nExpert != 8 && h.nLayer == 80 && h.nHead != h.nHeadKV
	case "qwen2", "deci", "olmo":
		h.is70B = h.nLayer == 80
	case "jais2":
		h.is70B = h.nLayer == 68
	}
	return h, nil
}

// mixer chooses tensor types for one model, carrying llama-quant.cpp's
// quantize_state_impl counters: some choices depend on how many tensors of a
// category came before, in llama.cpp's tensor order (llamaOrder).
type mixer struct {
	hp   hparams
	ft   FileType
	def  gguf.Type
	pure bool

	nAttnV, iAttnV      int
	nFFNDown, iFFNDown  int
	nFFNGate, iFFNGate  int
	nFFNUp, iFFNUp      int
	tiedEmbeddings      bool
	fallbacks           int
	fallbackDescription []string
}

func newMixer(hp hparams, ft FileType, pure bool, names []string) (*mixer, error) {
	def, ok := ft.DefaultType()
	if !ok {
		return nil, fmt.Errorf("quant: file type %s is not supported", ft)
	}
	m := &mixer{hp: hp, ft: ft, def: def, pure: pure, tiedEmbeddings: true}
	for _, n := range names {
		c := tensorCategory(n)
		if c.isAttnV() {
			m.nAttnV++
		}
		if c == catOutput {
			m.tiedEmbeddings = false
		}
	}
	m.nFFNDown, m.nFFNGate, m.nFFNUp = hp.nLayer, hp.nLayer, hp.nLayer
	return m, nil
}

// useMoreBits is llama.cpp's choice of the layers that get more bits: the
// first and last eighth and every third layer in between.
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// layerInfo returns the layer index of a per-layer tensor: its position among
// the tensors of its category, or for mixtures of experts the number in its name.
func (m *mixer) layerInfo(counter, n int, name string) (int, int, error) {
	if m.hp.nExpert > 1 {
		rest, ok := strings.CutPrefix(name, "blk.")
		num, _, ok2 := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if !ok || !ok2 || err != nil {
			return 0, 0, fmt.Errorf("quant: cannot determine the layer of tensor %s", name)
		}
		if i < 0 || i >= n {
			return 0, 0, fmt.Errorf("quant: bad layer %d for tensor %s, want [0, %d)", i, name, n)
		}
		return i, n, nil
	}
	return counter, n, nil
}

// typeFor is llama_tensor_get_type: the type tensor t gets. Call it once per
// tensor, in llamaOrder.
func (m *mixer) typeFor(t gguf.TensorInfo) (gguf.Type, error) {
	if !allowsQuantization(t) {
		return t.Type, nil
	}
	nt := m.def
	if !nt.IsQuantized() {
		return nt, nil
	}
	if !m.pure {
		var err error
		if nt, err = m.rules(nt, t); err != nil {
			return 0, err
		}
	}
	return m.fallback(t, nt), nil
}

// rules is llama_tensor_get_type_impl restricted to the supported file types.
func (m *mixer) rules(nt gguf.Type, t gguf.TensorInfo) (gguf.Type, error) {
	ft, hp := m.ft, m.hp
	cat := tensorCategory(t.Name)
	falcon := hp.arch == "falcon"
	switch {
	case cat == catOutput || (m.tiedEmbeddings && cat == catTokenEmbd):
		// The output matrix (or the token embeddings when they double as it)
		// keeps more bits.
		if falcon || t.Dims[0]%nt.BlockSize() != 0 {
			nt = gguf.TypeQ8_0
		} else if nt != gguf.TypeQ8_0 {
			nt = gguf.TypeQ6_K
		}
	case cat == catTokenEmbd:
		// Only very low-bit file types change the embeddings.
	case cat.isAttnV():
		switch {
		case (ft == FileTypeIQ4_NL || ft == FileTypeIQ4_XS) && hp.nGQA() >= 4:
			nt = gguf.TypeQ5_K
		case (ft == FileTypeQ4_K_M || ft == FileTypeQ5_K_M) && useMoreBits(m.iAttnV, m.nAttnV):
			nt = gguf.TypeQ6_K
		case ft == FileTypeQ4_K_S && m.iAttnV < 4:
			nt = gguf.TypeQ5_K
		}
		if hp.is70B && (nt == gguf.TypeQ3_K || nt == gguf.TypeQ4_K) {
			nt = gguf.TypeQ5_K
		}
		if hp.nExpert == 8 {
			nt = gguf.TypeQ8_0
		}
		m.iAttnV++
	case cat == catAttnK:
		if hp.nExpert == 8 {
			nt = gguf.TypeQ8_0
		}
	case cat == catAttnQ:
	case cat == catFFNDown:
		i, n, err := m.layerInfo(m.iFFNDown, m.nFFNDown, t.Name)
		if err != nil {
			return 0, err
		}
		switch {
		case ft == FileTypeQ4_K_M:
			if falcon {
				switch {
				case i < n/16:
					nt = gguf.TypeQ6_K
				case useMoreBits(i, n):
					nt = gguf.TypeQ5_K
				default:
					nt = gguf.TypeQ4_K
				}
			} else if useMoreBits(i, n) {
				nt = gguf.TypeQ6_K
			}
		case i < n/8 && (ft == FileTypeIQ4_NL || ft == FileTypeIQ4_XS):
			nt = gguf.TypeQ5_K
		case ft == FileTypeQ5_K_M && useMoreBits(i, n):
			nt = gguf.TypeQ6_K
		case ft == FileTypeQ4_K_S && !falcon && i < n/8:
			nt = gguf.TypeQ5_K
		}
		m.iFFNDown++
	case cat == catAttnOutput:
		if !falcon && hp.nExpert == 8 {
			switch ft {
			case FileTypeIQ4_NL, FileTypeQ4_K_S, FileTypeQ4_K_M, FileTypeIQ4_XS:
				nt = gguf.TypeQ5_K
			}
		}
	// catAttnQKV never gets here: isAttnV took it above (as in llama.cpp,
	// where the fused-QKV branch after the attn_v one is unreachable).
	case cat == catFFNGate:
		if _, _, err := m.layerInfo(m.iFFNGate, m.nFFNGate, t.Name); err != nil {
			return 0, err
		}
		m.iFFNGate++
	case cat == catFFNUp:
		if _, _, err := m.layerInfo(m.iFFNUp, m.nFFNUp, t.Name); err != nil {
			return 0, err
		}
		m.iFFNUp++
	}
	return nt, nil
}

// fallback is tensor_type_fallback: a row width the type's block does not
// divide gets a type with a smaller block, or F16 when even that does not fit.
func (m *mixer) fallback(t gguf.TensorInfo, nt gguf.Type) gguf.Type {
	ncols := t.Dims[0]
	if ncols%nt.BlockSize() == 0 {
		return nt
	}
	m.fallbacks++
	rt := nt
	switch nt {
	case gguf.TypeIQ1_S, gguf.TypeIQ1_M, gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S,
		gguf.TypeIQ3_XXS, gguf.TypeIQ3_S, gguf.TypeIQ4_XS:
		rt = gguf.TypeIQ4_NL
	case gguf.TypeQ2_0, gguf.TypeQ2_K, gguf.TypeQ3_K, gguf.TypeTQ1_0, gguf.TypeTQ2_0:
		rt = gguf.TypeQ4_0
	case gguf.TypeQ4_K:
		rt = gguf.TypeQ5_0
	case gguf.TypeQ5_K:
		rt = gguf.TypeQ5_1
	case gguf.TypeQ6_K:
		rt = gguf.TypeQ8_0
	}
	if ncols%rt.BlockSize() != 0 {
		rt = gguf.TypeF16
	}
	return rt
}

// blockIndex is the layer number of a "blk.N." tensor, or -1, read the way
// sscanf(name, "blk.%d.") does in llama_model_loader's weight_name_comparer:
// the digits after "blk." (with an optional sign) count, whatever follows.
func blockIndex(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	end := 0
	if end < len(rest) && (rest[end] == '-' || rest[end] == '+') {
		end++
	}
	start := end
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	if end == start {
		return -1
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return -1
	}
	return n
}

// llamaOrder returns the tensor indices in the order llama-quantize processes
// and writes them: tensors outside blocks first, then block by block, by name
// within each.
func llamaOrder(tensors []gguf.TensorInfo) []int {
	idx := make([]int, len(tensors))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		na, nb := tensors[a].Name, tensors[b].Name
		if c := cmp.Compare(blockIndex(na), blockIndex(nb)); c != 0 {
			return c
		}
		return strings.Compare(na, nb)
	})
	return idx
}
