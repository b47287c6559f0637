package config

import "strings"

// aliases are names people bring from other tools (PEFT, TRL, mlx-lm, our own flags)
// for keys that have another name here.
func aliases() map[string]string {
	return map[string]string{
		"rank": "r", "alpha": "lora_alpha", "dropout": "lora_dropout", "targets": "target_modules",
		"target": "target_modules", "modules": "target_modules", "rslora": "use_rslora",
		"lr": "learning_rate", "min_lr": "min_learning_rate", "lr_scheduler_type": "scheduler",
		"schedule": "scheduler", "warmup": "warmup_steps", "steps": "max_steps", "iters": "max_steps",
		"num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size", "batch": "batch_size",
		"gradient_accumulation_steps": "gradient_accumulation", "grad_accum": "gradient_accumulation",
		"clip": "max_grad_norm", "grad_clip": "max_grad_norm", "eval_every": "eval_steps",
		"save_every": "save_steps", "keep_checkpoints": "save_total_limit", "patience": "early_stopping_patience",
		"torch_dtype": "dtype", "type": "dtype", "file": "path", "model": "path",
		"max_seq_length": "seq_len", "seq_length": "seq_len", "output_dir": "dir",
	}
}

// suggestion returns " (did you mean X?)" for the valid key closest to name, or "".
func suggestion(name string) string {
	section, key, _ := strings.Cut(name, ".")
	if alt, ok := aliases()[key]; ok {
		if _, ok := lookup(section + "." + alt); ok {
			return " (did you mean " + section + "." + alt + "?)"
		}
		for _, k := range Keys() {
			if strings.HasSuffix(k.Name, "."+alt) {
				return " (did you mean " + k.Name + "?)"
			}
		}
	}
	best, bestD := "", len(name)/2+1
	for _, k := range Keys() {
		if d := editDistance(name, k.Name); d < bestD {
			best, bestD = k.Name, d
		}
	}
	// A key in the wrong section: same name elsewhere.
	if best == "" {
		for _, k := range Keys() {
			if _, kk, _ := strings.Cut(k.Name, "."); kk == key {
				best = k.Name
			}
		}
	}
	if best == "" {
		return " (see configs/README.md for the keys)"
	}
	return " (did you mean " + best + "?)"
}

// editDistance is the Levenshtein distance between a and b (bytes; keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
