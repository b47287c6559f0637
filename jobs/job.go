package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
)

// Job statuses, as OpenAI's fine-tuning API names them.
const (
	StatusValidating = "validating_files"
	StatusQueued     = "queued"
	StatusRunning    = "running"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// Job is a fine-tuning job in OpenAI's shape, with ecotune's LoRA settings beside it.
type Job struct {
	Object          string          `json:"object"`
	ID              string          `json:"id"`
	CreatedAt       int64           `json:"created_at"`
	FinishedAt      *int64          `json:"finished_at"`
	Model           string          `json:"model"`
	FineTunedModel  *string         `json:"fine_tuned_model"`
	OrganizationID  string          `json:"organization_id"`
	Status          string          `json:"status"`
	TrainingFile    string          `json:"training_file"`
	ValidationFile  *string         `json:"validation_file"`
	Hyperparameters Hyperparameters `json:"hyperparameters"`
	Ecotune         EcotuneSettings `json:"ecotune"`
	TrainedTokens   *int64          `json:"trained_tokens"`
	Error           *JobError       `json:"error"`
	ResultFiles     []string        `json:"result_files"`
	Seed            int64           `json:"seed"`
	Suffix          *string         `json:"user_provided_suffix"`

	vfile, ftModel string
	finished       int64
}

// JobError is why a job failed.
type JobError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

// Hyperparameters are OpenAI's; zero values take ecotune's defaults.
type Hyperparameters struct {
	NEpochs                int     `json:"n_epochs"`
	BatchSize              int     `json:"batch_size"`
	LearningRateMultiplier float64 `json:"learning_rate_multiplier"`
}

// EcotuneSettings are the LoRA/QLoRA settings OpenAI's API has no field for (the
// request's "ecotune" object); zero values take `ecotune train`'s defaults.
type EcotuneSettings struct {
	Rank      int     `json:"r,omitempty"`
	Alpha     float64 `json:"alpha,omitempty"`
	Targets   Targets `json:"targets,omitempty"` // module names, or "all"
	Dtype     string  `json:"dtype,omitempty"`   // QLoRA: quantize the base first (q4_k, nf4, ...)
	SeqLen    int     `json:"seq_len,omitempty"`
	LR        float64 `json:"lr,omitempty"`    // absolute; replaces the multiplier
	Steps     int     `json:"steps,omitempty"` // replaces n_epochs
	SaveEvery int     `json:"save_every,omitempty"`
	EvalEvery int     `json:"eval_every,omitempty"`
	// GradientCheckpointing and CheckpointKeep are train's --gradient-checkpointing and
	// --checkpoint-keep (none, ffn or all).
	GradientCheckpointing bool   `json:"gradient_checkpointing,omitempty"`
	CheckpointKeep        string `json:"checkpoint_keep,omitempty"`
}

// Targets are the modules LoRA adapts: a JSON array of names or one comma-separated string.
type Targets string

// UnmarshalJSON takes either form.
func (t *Targets) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = Targets(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("ecotune.targets must be a string or an array of strings")
	}
	*t = Targets(strings.Join(many, ","))
	return nil
}

// Settings is what a job was created with, stored as JSON.
type Settings struct {
	Hyperparameters Hyperparameters `json:"hyperparameters"`
	Ecotune         EcotuneSettings `json:"ecotune"`
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// ended reports whether a status is final.
func ended(status string) bool {
	return status == StatusSucceeded || status == StatusFailed || status == StatusCancelled
}
