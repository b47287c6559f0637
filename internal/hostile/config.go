package hostile

import "strings"

// Configs returns hostile TOML run configurations (ecotune train --config).
func Configs() []Entry {
	add := func(name, want, text string) Entry {
		return bytesEntry("config-"+name, KindConfig, ".toml", want, []byte(text))
	}
	return []Entry{
		add("r-string", `lora\.r|\br\b`, "[lora]\nr = \"eight\"\n"),
		add("r-float", `lora\.r|\br\b`, "[lora]\nr = 8.5\n"),
		add("r-huge", `\br\b|line 2`, "[lora]\nr = 99999999999999999999999\n"),
		add("r-negative", `\br\b`, "[lora]\nr = -4\n"),
		add("lr-string", `learning_rate`, "[training]\nlearning_rate = \"fast\"\n"),
		add("steps-array", `max_steps`, "[training]\nmax_steps = [1, 2]\n"),
		add("targets-int", `target_modules`, "[lora]\ntarget_modules = 5\n"),
		add("section-is-value", `lora|line 1`, "lora = 5\n"),
		add("unknown-key", `lora\.rank|unknown`, "[lora]\nrank = 4\n"),
		add("syntax", `line 2|toml`, "[lora\nr = 4\n"),
		add("duplicate-key", `\br\b|duplicate|line 3`, "[lora]\nr = 4\nr = 8\n"),
		add("invalid-utf8", `UTF-8|line 2|utf`, "[model]\nname = \"a\xff\xfe\"\n"),
		add("deep-inline", `line 1|lora|toml`, "lora = "+strings.Repeat("{a = ", 50000)+"1"+strings.Repeat("}", 50000)+"\n"),
		add("deep-array", `line 1|lora|toml|max_steps`, "[training]\nmax_steps = "+strings.Repeat("[", 50000)+strings.Repeat("]", 50000)+"\n"),
		add("nul", `line|toml|NUL|control`, "[lora]\nr = 4\x00\n"),
	}
}
