package convert_test

import (
	"fmt"
	"math"
)

// forward returns the logits of every position of tokens, computed in
// float64 the way transformers' modeling_<arch>.py does for the checkpoint.
func (m *hfModel) forward(tokens []int32) [][]float64 {
	E, D, n := m.embd, m.headDim, len(tokens)
	lin := func(name string, x []float64) []float64 {
		w := m.w[name+".weight"]
		rows := len(w) / len(x)
		out := make([]float64, rows)
		for i := range rows {
			var s float64
			for j, v := range x {
				s += w[i*len(x)+j] * v
			}
			out[i] = s
		}
		if b, ok := m.w[name+".bias"]; ok {
			for i := range out {
				out[i] += b[i]
			}
		}
		return out
	}
	norm := func(name string, x []float64) []float64 {
		w := m.w[name+".weight"]
		out := make([]float64, len(x))
		if m.arch == "phi2" { // LayerNorm
			var mean, v float64
			for _, a := range x {
				mean += a
			}
			mean /= float64(len(x))
			for _, a := range x {
				v += (a - mean) * (a - mean)
			}
			r := 1 / math.Sqrt(v/float64(len(x))+m.eps)
			for i, a := range x {
				out[i] = (a-mean)*r*w[i] + m.w[name+".bias"][i]
			}
			return out
		}
		var ss float64
		for _, a := range x {
			ss += a * a
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+m.eps)
		for i, a := range x {
			g := w[i]
			if m.arch == "gemma2" {
				g = 1 + w[i]
			}
			out[i] = a * r * g
		}
		return out
	}
	gelu := func(x float64) float64 { // gelu_new / gelu_pytorch_tanh
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	}
	// RoPE as rotate_half over the first rot dims of a head, with llama3's
	// frequency scaling where configured (transformers' _compute_llama3_parameters).
	rot := int(float64(D) * m.rotary)
	invFreq := make([]float64, rot/2)
	for i := range invFreq {
		invFreq[i] = 1 / math.Pow(m.theta, float64(2*i)/float64(rot))
		if m.longShort != nil {
			// transformers' LongRoPE: sequences within the original context use the
			// short factors, dividing each frequency.
			invFreq[i] /= m.longShort[i]
		}
		if m.llama3 != nil {
			f, lo, hi, old := m.llama3["factor"], m.llama3["low_freq_factor"], m.llama3["high_freq_factor"], m.llama3["original_max_position_embeddings"]
			wave := 2 * math.Pi / invFreq[i]
			switch {
			case wave > old/lo:
				invFreq[i] /= f
			case wave >= old/hi:
				s := (old/wave - lo) / (hi - lo)
				invFreq[i] = (1-s)*invFreq[i]/f + s*invFreq[i]
			}
		}
	}
	rope := func(x []float64, pos int) {
		for i := range rot / 2 {
			th := float64(pos) * invFreq[i]
			c, s := m.ropeAttn*math.Cos(th), m.ropeAttn*math.Sin(th)
			a, b := x[i], x[i+rot/2]
			x[i], x[i+rot/2] = a*c-b*s, a*s+b*c
		}
	}

	xs := make([][]float64, n)
	for t, tok := range tokens {
		xs[t] = append([]float64(nil), m.w["model.embed_tokens.weight"][int(tok)*E:(int(tok)+1)*E]...)
		if m.arch == "gemma2" {
			for i := range xs[t] {
				xs[t][i] *= math.Sqrt(float64(E))
			}
		}
	}
	for l := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		qs, ks, vs, hs := make([][]float64, n), make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for t := range n {
			hs[t] = norm(p+"input_layernorm", xs[t])
			if m.arch == "phi3" {
				qkv := lin(p+"self_attn.qkv_proj", hs[t])
				Q, KV := m.heads*D, m.kv*D
				qs[t], ks[t], vs[t] = qkv[:Q], qkv[Q:Q+KV], qkv[Q+KV:]
			} else {
				qs[t], ks[t], vs[t] = lin(p+"self_attn.q_proj", hs[t]), lin(p+"self_attn.k_proj", hs[t]), lin(p+"self_attn.v_proj", hs[t])
			}
			for h := range m.heads {
				rope(qs[t][h*D:(h+1)*D], t)
			}
			for h := range m.kv {
				rope(ks[t][h*D:(h+1)*D], t)
			}
		}
		sliding := m.arch == "gemma2" && l%2 == 0
		for t := range n {
			att := make([]float64, m.heads*D)
			for h := range m.heads {
				kv := h / (m.heads / m.kv)
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for u := 0; u <= t; u++ {
					if sliding && t-u >= m.window {
						sc[u] = math.Inf(-1)
						continue
					}
					for i := range D {
						sc[u] += qs[t][h*D+i] * ks[u][kv*D+i]
					}
					sc[u] /= math.Sqrt(float64(D))
					if m.attnCap > 0 {
						sc[u] = m.attnCap * math.Tanh(sc[u]/m.attnCap)
					}
					mx = math.Max(mx, sc[u])
				}
				var z float64
				for u := range sc {
					sc[u] = math.Exp(sc[u] - mx)
					z += sc[u]
				}
				for u := range sc {
					for i := range D {
						att[h*D+i] += sc[u] / z * vs[u][kv*D+i]
					}
				}
			}
			switch m.arch {
			case "phi2": // attention and MLP in parallel from the same norm
				o := lin(p+"self_attn.dense", att)
				up := lin(p+"mlp.fc1", hs[t])
				for i := range up {
					up[i] = gelu(up[i])
				}
				down := lin(p+"mlp.fc2", up)
				for i := range xs[t] {
					xs[t][i] += o[i] + down[i]
				}
				continue
			case "gemma2":
				o := norm(p+"post_attention_layernorm", lin(p+"self_attn.o_proj", att))
				for i := range xs[t] {
					xs[t][i] += o[i]
				}
				h2 := norm(p+"pre_feedforward_layernorm", xs[t])
				g, up := lin(p+"mlp.gate_proj", h2), lin(p+"mlp.up_proj", h2)
				for i := range g {
					g[i] = gelu(g[i]) * up[i]
				}
				down := norm(p+"post_feedforward_layernorm", lin(p+"mlp.down_proj", g))
				for i := range xs[t] {
					xs[t][i] += down[i]
				}
				continue
			}
			o := lin(p+"self_attn.o_proj", att)
			for i := range xs[t] {
				xs[t][i] += o[i]
			}
			h2 := norm(p+"post_attention_layernorm", xs[t])
			var g, up []float64
			if m.arch == "phi3" {
				gu := lin(p+"mlp.gate_up_proj", h2)
				g, up = gu[:m.ff], gu[m.ff:]
			} else {
				g, up = lin(p+"mlp.gate_proj", h2), lin(p+"mlp.up_proj", h2)
			}
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * up[i]
			}
			down := lin(p+"mlp.down_proj", g)
			for i := range xs[t] {
				xs[t][i] += down[i]
			}
		}
	}
	head, final := "lm_head", "model.norm"
	if m.tied {
		head = "model.embed_tokens"
	}
	if m.arch == "phi2" {
		final = "model.final_layernorm"
	}
	out := make([][]float64, n)
	for t := range n {
		out[t] = lin(head, norm(final, xs[t]))
		if m.finalCap > 0 {
			for i := range out[t] {
				out[t][i] = m.finalCap * math.Tanh(out[t][i]/m.finalCap)
			}
		}
	}
	return out
}
