package trainer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ecotune/ecotune/ggml"
)

// stepGraph computes the masked loss of one batch shape and, when training, adds
// weight·∇loss to the optimizer's gradient accumulators.
//
// The loss is the mean cross-entropy over target positions only. Rather than computing
// logits for every position and masking them (a [vocab, B·T] tensor of logits, another
// of labels, and ggml's cross-entropy backward, which assumes each label row sums to 1,
// would give masked rows a gradient), the graph gathers the K target positions' hidden
// states with get_rows first: logits and one-hot labels are [vocab, K], the output
// projection runs on targets alone, and ggml's mean over rows is exactly the masked mean.
// get_rows' backward scatters the gradient back to the gathered positions. On the CPU
// the logits are not even held whole: the output projection and the loss run in
// vocabulary chunks (ggml.LinearCrossEntropy), and the labels are read by nothing.
type stepGraph struct {
	m       *Model
	c       *ggml.Context
	b       *builder
	g       *ggml.Graph  // what runs: the forward pass and, when training, the backward
	seed    *ggml.Tensor // ∂loss/∂loss, set to 1 before each training run
	loss    *ggml.Tensor
	rows    *ggml.Tensor // I32 [K] target positions
	labels  *ggml.Tensor // F32 [vocab, K] one-hot, for ggml's cross-entropy (generic ops)
	targets *ggml.Tensor // I32 [K] the labels' indices, for the fused cross-entropy
	weight  *ggml.Tensor // F32 [1] accumulation weight
	B, T, K int
	train   bool
}

// newStepGraph builds the graph for batches of B×T with K targets (packed: several
// documents per sequence, see Batch.Starts), with lora's
// adapters (nil: the model alone). params and accs (training only) are the trained
// tensors and their gradient accumulators, in the same order; ck says how the backward
// pass gets each layer's activations.
func newStepGraph(m *Model, lora *LoRA, params, accs []*ggml.Tensor, B, T, K int, packed bool, dropout float32, ck checkpointing) (s *stepGraph, err error) {
	s = &stepGraph{m: m, B: B, T: T, K: K, train: accs != nil}
	if s.c, err = m.newComputeContext(); err != nil {
		return nil, err
	}
	err = ggml.Build(func() {
		c := s.c
		s.b = newBuilder(c, m, lora, B, T, packed, dropout)
		s.b.ck = ck
		if m.fusedOps() {
			s.b.fuse = fuseOps
			if s.train {
				s.b.fuse = fuseSites
			}
		}
		s.rows = c.NewTensor(ggml.TypeI32, K).SetName("target_rows").SetInput()
		h := c.GetRows(s.b.hidden(), s.rows)
		// The output layer and the loss in vocabulary chunks (ggml.LinearCrossEntropy)
		// hold neither the logits [vocab, K] nor their gradient, nor a transposed copy
		// of the whole output matrix: on a 128,256-token vocabulary those were the
		// largest tensors of a step. A trained output matrix (full fine-tuning) needs
		// the logits' gradient, and a bias or soft cap the logits themselves.
		w, plain := s.b.outputMatrix()
		chunked := s.b.fuse != fuseNone && plain && !(s.train && m.trainable)
		var logits *ggml.Tensor
		if s.b.fuse != fuseNone {
			s.targets = c.NewTensor(ggml.TypeI32, K).SetName("targets").SetInput()
		}
		switch {
		case s.b.fuse == fuseOps && chunked:
			s.loss = c.LinearCrossEntropy(w, h, s.targets, lossChunkRows)
		case s.b.fuse == fuseOps:
			s.loss = c.CrossEntropyTargets(s.b.logits(h), s.targets)
		default:
			logits = s.b.logits(h)
			s.labels = c.NewTensor(ggml.TypeF32, m.HP.Vocab, K).SetName("labels").SetInput()
			s.loss = c.CrossEntropyLoss(logits, s.labels)
		}
		s.loss.SetName("loss").SetOutput()
		g := c.NewGraph(m.graphNodes, s.train)
		// The stored copies of kept products join the forward pass, right after their
		// products, before anything else uses them.
		for _, k := range s.b.keep {
			if k.Stored != nil {
				g.Expand(k.Stored)
			}
		}
		g.Expand(s.loss)
		if !s.train {
			s.g = g
			return
		}
		s.loss.SetLoss()
		g.BuildBackward(c)
		if s.b.fuse == fuseSites {
			// See ggml.Graph.FuseAttention: autograd cannot differentiate fused ops.
			g.FuseAttention(c, s.b.attnSites)
			g.FuseLoRA(c, s.b.loraSites)
			if chunked {
				g.FuseLinearCrossEntropy(c, w, h, s.loss, s.targets, lossChunkRows, m.computeType, m.transposedOf)
			} else {
				g.FuseCrossEntropy(c, logits, s.loss, s.targets)
			}
		}
		if ck != checkpointNone {
			g.Checkpoint(c, s.b.checkpoints, s.b.keep)
		}
		// On the CPU, autograd's out_prod form of each weight's input gradient costs
		// 3–30× a mul_mat of the same size; see ggml.Graph.OutProdsAsMatMul.
		g.OutProdsAsMatMul(c, m.computeType, m.transposedOf, m.fusedOps())
		// The generic attention's rope gradients come as permuted views, which CUDA's
		// rope does not take (the fused ops' are contiguous already).
		g.ContiguousRopeGrads(c)
		s.seed = g.Grad(s.loss).SetInput()
		s.weight = c.NewTensor(ggml.TypeF32, 1).SetName("acc_weight").SetInput()
		// Each gradient is added to its accumulator as soon as it is complete, so
		// that hundreds of small gradients do not stay alive (and scatter the compute
		// buffer) until the end of the graph.
		after := map[*ggml.Tensor][]*ggml.Tensor{}
		for i, p := range params {
			grad := g.Grad(p)
			if grad == nil {
				opErr(fmt.Sprintf("%s gets no gradient from the loss", p.Name()))
			}
			after[grad] = append(after[grad], c.Cpy(c.Add(accs[i], c.Mul(grad, s.weight)), accs[i]))
		}
		s.g = c.NewGraph(m.graphNodes, false)
		s.g.ExpandFrom(g, []*ggml.Tensor{s.loss}, after)
	})
	if err != nil {
		s.c.Close()
		return nil, fmt.Errorf("trainer: building the training graph: %w", err)
	}
	return s, nil
}

// checkpointing is how a training step's backward pass gets each layer's activations.
type checkpointing int

const (
	checkpointNone    checkpointing = iota // kept from the forward pass
	checkpointFull                         // recomputed from the layer's input (gradient checkpointing)
	checkpointKeepFFN                      // recomputed, but the feed-forward gate and up products kept
	checkpointKeepAll                      // recomputed, but every product read again kept (Q and K F32, the others BF16)
)

// lossChunkRows is the number of vocabulary rows ggml.LinearCrossEntropy takes at a
// time; 0 lets it choose (ggml.LinearCrossEntropyRows). Tests set it to cut small
// vocabularies into several chunks.
var lossChunkRows = 0

func opErr(msg string) { panic(&ggml.OpError{Op: "trainer", Msg: msg}) }

// run computes the batch's loss (and, when training, accumulates weight·∇loss). rng
// draws the dropout masks; it may be nil without dropout. With prof non-nil the graph
// runs one node at a time and the time per op is stored there.
func (s *stepGraph) run(batch *Batch, weight float32, rng *rand.Rand, prof *[]ggml.OpTime) (float64, error) {
	if batch.B != s.B || batch.T != s.T {
		return 0, fmt.Errorf("trainer: batch of %d×%d run on a graph for %d×%d", batch.B, batch.T, s.B, s.T)
	}
	// ggml's get_rows asserts on an id outside the table: check the batch's here.
	if err := s.m.checkTokens(batch.Tokens, batch.B, batch.T); err != nil {
		return 0, err
	}
	rows, labels := batch.targetRows()
	if len(rows) != s.K {
		return 0, fmt.Errorf("trainer: batch has %d targets, the graph %d", len(rows), s.K)
	}
	if err := s.m.sched.Alloc(s.g); err != nil {
		return 0, fmt.Errorf("trainer: step: %w", err)
	}
	if err := s.b.setInputs(batch.Tokens, batch.Starts); err != nil {
		return 0, fmt.Errorf("trainer: step inputs: %w", err)
	}
	if err := s.rows.SetI32(rows); err != nil {
		return 0, fmt.Errorf("trainer: step inputs: %w", err)
	}
	for _, l := range labels {
		if int(l) >= s.m.HP.Vocab {
			return 0, fmt.Errorf("trainer: label %d is outside the vocabulary of %d", l, s.m.HP.Vocab)
		}
	}
	if s.targets != nil {
		if err := s.targets.SetI32(labels); err != nil {
			return 0, fmt.Errorf("trainer: step inputs: %w", err)
		}
	}
	if s.labels != nil && s.labels.Allocated() {
		V := s.m.HP.Vocab
		onehot := make([]float32, V*s.K)
		for i, l := range labels {
			onehot[i*V+int(l)] = 1
		}
		if err := s.labels.SetF32(onehot); err != nil {
			return 0, fmt.Errorf("trainer: step inputs: %w", err)
		}
	}
	for _, dm := range s.b.dropMask {
		if err := dm.SetF32(dropoutMask(dm.Elements(), s.b.dropout, rng)); err != nil {
			return 0, fmt.Errorf("trainer: dropout mask: %w", err)
		}
	}
	if s.train {
		if err := s.weight.SetF32([]float32{weight}); err != nil {
			return 0, fmt.Errorf("trainer: step inputs: %w", err)
		}
		if err := s.seed.SetF32([]float32{1}); err != nil {
			return 0, fmt.Errorf("trainer: step inputs: %w", err)
		}
	}
	if prof != nil {
		ops, err := s.m.sched.RunProfiled(s.g)
		if err != nil {
			return 0, fmt.Errorf("trainer: step: %w", err)
		}
		*prof = ops
	} else if err := s.m.sched.Run(s.g); err != nil {
		return 0, fmt.Errorf("trainer: step: %w", err)
	}
	v, err := s.loss.F32()
	if err != nil {
		return 0, fmt.Errorf("trainer: reading the loss: %w", err)
	}
	loss := float64(v[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("trainer: %w: loss is %g", ErrNonFinite, loss)
	}
	return loss, nil
}

// ErrNonFinite is wrapped by errors that stop training on a NaN or infinite loss or
// gradient norm.
var ErrNonFinite = errors.New("non-finite value")

// dropoutMask returns n inverted-dropout factors: 0 with probability p, else 1/(1-p).
func dropoutMask(n int, p float32, rng *rand.Rand) []float32 {
	out := make([]float32, n)
	keep := 1 / (1 - p)
	for i := range out {
		if rng.Float32() >= p {
			out[i] = keep
		}
	}
	return out
}

// Close frees the graph's context.
func (s *stepGraph) Close() error {
	if s == nil {
		return nil
	}
	return s.c.Close()
}
