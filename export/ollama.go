package export

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OllamaModelfile is the name of the file WriteOllama writes.
const OllamaModelfile = "Modelfile"

// OllamaOptions configures WriteOllama.
type OllamaOptions struct {
	Base    string // the base model GGUF
	Adapter string // the LoRA adapter GGUF trained on it
	Dir     string // where the Modelfile goes, created if needed
	// Copy puts the base and the adapter into Dir (hard links where the file
	// system allows, copies otherwise) and names them relatively, so Dir is
	// self-contained; otherwise the Modelfile names them by absolute path.
	Copy bool
	// Format names a chat format of ChatFormats to use; "" detects it from
	// the base model's tokenizer.chat_template.
	Format string
	System string // an optional SYSTEM message
}

// OllamaSummary describes a written Modelfile.
type OllamaSummary struct {
	Path   string // the Modelfile
	Format string // the chat format used, "" when the template was not recognized
}

// WriteOllama writes a Modelfile for `ollama create NAME -f DIR/Modelfile`:
// FROM the base, ADAPTER the LoRA, the model's chat template translated to
// Ollama's syntax with its stop markers when it is a known one, and SYSTEM.
// Without a recognized template, Ollama falls back to its own detection.
func WriteOllama(opts OllamaOptions) (*OllamaSummary, error) {
	base, a, err := openMatched(opts.Base, opts.Adapter, "ollama")
	if err != nil {
		return nil, err
	}
	defer base.Close()
	defer a.Close()
	var format ChatFormat
	var ok bool
	if opts.Format != "" {
		if format, ok = DetectChatFormat(opts.Format); !ok || format.Name != strings.ToLower(opts.Format) {
			return nil, fmt.Errorf("export: ollama: unknown chat format %q (known: %s)", opts.Format, formatNames())
		}
	} else if tmpl, err := base.Meta.String("tokenizer.chat_template"); err == nil {
		format, ok = DetectChatFormat(tmpl)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("export: ollama: %w", err)
	}
	from, adapter, err := modelPaths(opts)
	if err != nil {
		return nil, err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Ollama Modelfile written by ecotune: ollama create NAME -f %s\n", OllamaModelfile)
	fmt.Fprintf(&b, "FROM %s\n", quotePath(from))
	fmt.Fprintf(&b, "ADAPTER %s\n", quotePath(adapter))
	if ok {
		if strings.Contains(format.Template, `"""`) {
			return nil, fmt.Errorf("export: ollama: the %s template contains \"\"\", which a Modelfile cannot quote", format.Name)
		}
		source := "translated from the model's tokenizer.chat_template"
		if opts.Format != "" {
			source = "chosen by the user"
		}
		fmt.Fprintf(&b, "\n# %s chat template, %s\n", format.Name, source)
		fmt.Fprintf(&b, "TEMPLATE \"\"\"%s\"\"\"\n", format.Template)
		for _, s := range format.Stops {
			fmt.Fprintf(&b, "PARAMETER stop %s\n", strconv.Quote(s))
		}
	} else {
		b.WriteString("\n# The model's chat template is not one ecotune translates; Ollama detects it itself.\n")
	}
	if opts.System != "" {
		if strings.Contains(opts.System, `"""`) {
			return nil, fmt.Errorf("export: ollama: the system message contains \"\"\", which a Modelfile cannot quote")
		}
		fmt.Fprintf(&b, "SYSTEM \"\"\"%s\"\"\"\n", opts.System)
	}
	path := filepath.Join(opts.Dir, OllamaModelfile)
	if err := writeFileAtomic(path, []byte(b.String())); err != nil {
		return nil, fmt.Errorf("export: ollama: %w", err)
	}
	return &OllamaSummary{Path: path, Format: format.Name}, nil
}

func formatNames() string {
	names := make([]string, len(chatFormats))
	for i, f := range chatFormats {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// modelPaths returns how the Modelfile names the base and the adapter,
// copying them into the directory first when asked.
func modelPaths(opts OllamaOptions) (from, adapter string, err error) {
	if !opts.Copy {
		if from, err = filepath.Abs(opts.Base); err != nil {
			return "", "", fmt.Errorf("export: ollama: %w", err)
		}
		if adapter, err = filepath.Abs(opts.Adapter); err != nil {
			return "", "", fmt.Errorf("export: ollama: %w", err)
		}
		return from, adapter, nil
	}
	names := [2]string{filepath.Base(opts.Base), filepath.Base(opts.Adapter)}
	if names[0] == names[1] {
		names[1] = "adapter-" + names[1]
	}
	for i, src := range []string{opts.Base, opts.Adapter} {
		if err := linkOrCopy(src, filepath.Join(opts.Dir, names[i])); err != nil {
			return "", "", fmt.Errorf("export: ollama: %w", err)
		}
	}
	return "./" + names[0], "./" + names[1], nil
}

// linkOrCopy makes dst hold src's bytes: a hard link (no space used) where
// possible, a copy through a temporary file otherwise.
func linkOrCopy(src, dst string) error {
	if same, err := sameFile(src, dst); err == nil && same {
		return nil
	}
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// quotePath quotes a path with spaces or quotes for the Modelfile.
func quotePath(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return strconv.Quote(p)
	}
	return p
}
