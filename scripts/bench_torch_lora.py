#!/usr/bin/env python3
"""The PyTorch peer of `ecotune bench --torch`: LoRA training of a llama-shaped model
as a user without ecotune would run it, measured the way ecotune's own run is.

The model follows Hugging Face transformers' eager llama (RMSNorm, rotary embeddings
with rotate_half, grouped-query attention through an explicit causal softmax, SwiGLU
MLP, lm_head tied to the embeddings or not) and the adapters PEFT's LoRA Linear (the
base layer frozen, lora_A and lora_B beside it, scaled by alpha / r). AdamW updates
only the adapters; the loss is the cross-entropy of every position of one sequence of
--seq-len tokens per step. The weights are random: the shape is what counts.

Prints one JSON line: tokens/s over the steps after the --warmup ones, seconds per
step, the process's peak resident memory (getrusage's ru_maxrss), the parameter
counts, torch's version and the BLAS library it loaded. When torch cannot be
imported it prints {"error": ...} and exits with status 3.

--check MODEL.gguf (with --adapter ADAPTER.gguf, --tokens 1,2,3) loads the weights of
an F32/F16 GGUF and of an ecotune adapter instead, runs one forward pass and prints the
logits: the test that this model computes what ecotune's does
(cmd/ecotune/bench_torch_test.go).

Standard library and torch only.
"""

import argparse
import json
import math
import os
import resource
import struct
import sys
import time

# GGUF target names (what `ecotune train --lora.targets` resolves to) and the
# modules of HF's llama they are.
TARGETS = {
    "attn_q": ("self_attn", "q_proj"),
    "attn_k": ("self_attn", "k_proj"),
    "attn_v": ("self_attn", "v_proj"),
    "attn_output": ("self_attn", "o_proj"),
    "ffn_gate": ("mlp", "gate_proj"),
    "ffn_up": ("mlp", "up_proj"),
    "ffn_down": ("mlp", "down_proj"),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="llama", choices=["llama", "qwen2"],
                   help="qwen2 is llama with biases on q, k and v")
    p.add_argument("--embd", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--heads-kv", type=int, required=True)
    p.add_argument("--head-dim", type=int, required=True)
    p.add_argument("--ff", type=int, required=True)
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--tied", action="store_true", help="lm_head shares the embeddings' weight")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated GGUF names")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--steps", type=int, default=4, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--check", metavar="MODEL.gguf", help="load these weights, print the logits of --tokens")
    p.add_argument("--adapter", metavar="ADAPTER.gguf", help="with --check: LoRA weights (lora_a, lora_b)")
    p.add_argument("--tokens", default="", help="with --check: comma-separated token ids")
    a = p.parse_args(argv)
    a.targets = [t for t in a.targets.split(",") if t]
    for t in a.targets:
        if t not in TARGETS:
            p.error("unknown target %r (known: %s)" % (t, ", ".join(TARGETS)))
    if a.heads % a.heads_kv:
        p.error("--heads %d is not a multiple of --heads-kv %d" % (a.heads, a.heads_kv))
    if a.steps < 1 or a.warmup < 0 or a.threads < 1 or a.seq_len < 1 or a.rank < 1:
        p.error("--steps, --threads, --seq-len and --rank must be positive, --warmup at least 0")
    return a


args = parse_args(sys.argv[1:])

# The thread count must be in place before torch (and the BLAS it loads) starts its
# pools: OpenBLAS reads its variable once, at load, and torch's set_num_threads does not
# reach a BLAS it only knows as the generic libblas.so.3. An OPENBLAS_NUM_THREADS the
# environment already holds stays (OPENBLAS_NUM_THREADS=1 keeps OpenBLAS's own threads
# from competing with torch's OpenMP ones); the JSON line reports the value used.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(json.dumps({"error": "cannot import torch (%s): apt-get install python3-torch libopenblas0-pthread" % e}))
    sys.exit(3)

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(args.threads)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class LoraLinear(nn.Module):
    """PEFT's LoRA Linear: y = base(x) + lora_B(lora_A(dropout(x))) · alpha / r."""

    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scaling = alpha / r
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


class Rotary(nn.Module):
    def __init__(self, dim, theta):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions):
        freqs = torch.outer(positions.float(), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def repeat_kv(x, n):
    """[b, kv, t, d] → [b, kv·n, t, d]: query head h reads key/value head h // n."""
    if n == 1:
        return x
    b, kv, t, d = x.shape
    return x[:, :, None, :, :].expand(b, kv, n, t, d).reshape(b, kv * n, t, d)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.heads, self.heads_kv, self.head_dim = a.heads, a.heads_kv, a.head_dim
        bias = a.arch == "qwen2"
        self.q_proj = nn.Linear(a.embd, a.heads * a.head_dim, bias=bias)
        self.k_proj = nn.Linear(a.embd, a.heads_kv * a.head_dim, bias=bias)
        self.v_proj = nn.Linear(a.embd, a.heads_kv * a.head_dim, bias=bias)
        self.o_proj = nn.Linear(a.heads * a.head_dim, a.embd, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads_kv, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        n = self.heads // self.heads_kv
        k, v = repeat_kv(k, n), repeat_kv(v, n)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        w = nn.functional.softmax(w + mask, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.gate_proj = nn.Linear(a.embd, a.ff, bias=False)
        self.up_proj = nn.Linear(a.embd, a.ff, bias=False)
        self.down_proj = nn.Linear(a.ff, a.embd, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.input_layernorm = RMSNorm(a.embd, a.norm_eps)
        self.self_attn = Attention(a)
        self.post_attention_layernorm = RMSNorm(a.embd, a.norm_eps)
        self.mlp = MLP(a)

    def forward(self, h, cos, sin, mask):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class CausalLM(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.embd)
        self.layers = nn.ModuleList(DecoderLayer(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.embd, a.norm_eps)
        self.rotary = Rotary(a.head_dim, a.rope_theta)
        self.lm_head = nn.Linear(a.embd, a.vocab, bias=False)
        if a.tied:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(self, ids, labels=None):
        t = ids.shape[1]
        cos, sin = self.rotary(torch.arange(t))
        mask = torch.full((t, t), torch.finfo(torch.float32).min).triu(1)
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        logits = self.lm_head(self.norm(h)).float()
        if labels is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.reshape(-1))


def add_lora(model, a):
    """Freezes every weight, then wraps the target projections of each layer."""
    model.requires_grad_(False)
    for layer in model.layers:
        for t in a.targets:
            parent, name = TARGETS[t]
            mod = getattr(layer, parent)
            setattr(mod, name, LoraLinear(getattr(mod, name), a.rank, a.alpha))
    return [p for p in model.parameters() if p.requires_grad]


def random_init(model):
    """Hugging Face's _init_weights for llama: N(0, 0.02²) weights, zero biases."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.normal_(0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()


def blas_library():
    """The BLAS shared object this process mapped, from /proc/self/maps ("" elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in os.path.basename(path):
                    return path
    except OSError:
        pass
    return ""


# --check: a GGUF's weights in this model.

GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf(path):
    """Returns (metadata, {name: tensor}) of an F32/F16 GGUF file, each tensor in
    torch's row-major order: ggml's dims [n_in, n_out] become [n_out, n_in]."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = buf[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(typ):
        if typ in GGUF_SCALARS:
            return take(GGUF_SCALARS[typ])
        if typ == 8:
            return string()
        if typ == 9:
            inner, n = take("I"), take("Q")
            return [value(inner) for _ in range(n)]
        raise ValueError("%s: unknown metadata type %d" % (path, typ))

    if buf[:4] != b"GGUF":
        raise ValueError("%s is not a GGUF file" % path)
    pos = 4
    take("I")  # version
    n_tensors, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        infos.append((name, dims, take("I"), take("Q")))
    align = meta.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    tensors = {}
    for name, dims, typ, off in infos:
        dtype = {0: torch.float32, 1: torch.float16}.get(typ)
        if dtype is None:
            raise ValueError("%s: tensor %s has type %d; --check reads F32 and F16" % (path, name, typ))
        n = math.prod(dims)
        t = torch.frombuffer(bytearray(buf[start + off:start + off + n * (4 if typ == 0 else 2)]), dtype=dtype)
        tensors[name] = t.float().reshape(list(reversed(dims)))
    return meta, tensors


def unpermute(w, heads):
    """llama.cpp's converter reorders each llama Q and K head's rows so that ggml's
    rope rotates adjacent pairs; HF's rotate_half pairs row i with row i + d/2. This
    puts them back: in a head, row 2j (GGUF) is row j (HF), row 2j+1 is row j + d/2."""
    out = w.shape[0]
    return w.reshape(heads, out // heads // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def load_check(model, a):
    _, w = read_gguf(a.check)
    names = {
        "attn_q": ("self_attn", "q_proj", a.heads),
        "attn_k": ("self_attn", "k_proj", a.heads_kv),
        "attn_v": ("self_attn", "v_proj", 0),
        "attn_output": ("self_attn", "o_proj", 0),
        "ffn_gate": ("mlp", "gate_proj", 0),
        "ffn_up": ("mlp", "up_proj", 0),
        "ffn_down": ("mlp", "down_proj", 0),
    }
    fix = (lambda x, heads: unpermute(x, heads) if heads and a.arch == "llama" else x)
    adapter = read_gguf(a.adapter)[1] if a.adapter else {}
    with torch.no_grad():
        model.embed_tokens.weight.copy_(w["token_embd.weight"])
        model.norm.weight.copy_(w["output_norm.weight"])
        if not a.tied:
            model.lm_head.weight.copy_(w["output.weight"])
        for i, layer in enumerate(model.layers):
            p = "blk.%d." % i
            layer.input_layernorm.weight.copy_(w[p + "attn_norm.weight"])
            layer.post_attention_layernorm.weight.copy_(w[p + "ffn_norm.weight"])
            for t, (parent, name, heads) in names.items():
                mod = getattr(getattr(layer, parent), name)
                lin = mod.base_layer if isinstance(mod, LoraLinear) else mod
                lin.weight.copy_(fix(w[p + t + ".weight"], heads))
                if lin.bias is not None:
                    lin.bias.copy_(fix(w[p + t + ".bias"], heads))
                if isinstance(mod, LoraLinear) and p + t + ".weight.lora_a" in adapter:
                    mod.lora_A.weight.copy_(adapter[p + t + ".weight.lora_a"])
                    mod.lora_B.weight.copy_(fix(adapter[p + t + ".weight.lora_b"], heads))


def main(a):
    torch.manual_seed(a.seed)
    model = CausalLM(a)
    random_init(model)
    trainable = add_lora(model, a)
    if a.check:
        load_check(model, a)
        ids = torch.tensor([[int(x) for x in a.tokens.split(",")]])
        with torch.no_grad():
            logits = model(ids)[0]
            loss = F.cross_entropy(logits[:-1], ids[0, 1:]).item() if ids.shape[1] > 1 else 0.0
        print(json.dumps({"logits": logits.tolist(), "loss": loss}))
        return
    opt = torch.optim.AdamW(trainable, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    model.train()
    gen = torch.Generator().manual_seed(a.seed)
    start = None
    losses = []
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            start = time.perf_counter()
        ids = torch.randint(0, a.vocab, (1, a.seq_len + 1), generator=gen)
        loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    elapsed = time.perf_counter() - start
    print(json.dumps({
        "tokens_per_sec": a.steps * a.seq_len / elapsed,
        "seconds_per_step": elapsed / a.steps,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in trainable),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "blas": blas_library(),
        "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }))


if __name__ == "__main__":
    main(args)
