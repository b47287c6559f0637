package data

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchSizeMB is the size of the generated JSONL: small by default so the
// benchmark runs in seconds; set ECOTUNE_BENCH_MB=1024 to check the 1 GB
// target (≥ 50 MB/s, peak RSS < 500 MB) by hand.
func benchSizeMB(b *testing.B) int {
	if s := os.Getenv("ECOTUNE_BENCH_MB"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err, "ECOTUNE_BENCH_MB")
		return n
	}
	return 32
}

// writeBenchJSONL writes about mb MiB of mixed records (Q&A, chats with a
// system turn, Alpaca, some non-ASCII text and HTML, 5% duplicates, 0.5%
// broken lines) and returns the path and its exact size.
func writeBenchJSONL(b *testing.B, dir string, mb int) (string, int64) {
	path := filepath.Join(dir, "bench.jsonl")
	f, err := os.Create(path)
	require.NoError(b, err)
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the carbon cycle moves carbon between the atmosphere oceans soil rocks and living things " +
		"forests absorb carbon dioxide through photosynthesis while respiration decay and combustion release it " +
		"climate change mitigation adaptation renewable energy wind solar hydro geothermal biomass efficiency " +
		"biodiversity ecosystems wetlands watershed groundwater pollution emissions methane nitrous oxide ozone " +
		"café naïve São Paulo Zürich 二酸化炭素 énergie")
	sentence := func(n int) string {
		var sb strings.Builder
		for i := range n {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(words[rng.IntN(len(words))])
		}
		sb.WriteByte('.')
		return sb.String()
	}
	limit := int64(mb) << 20
	var written int64
	var recent []string
	for i := 0; written < limit; i++ {
		var line string
		switch {
		case i%200 == 199:
			line = `{"question": "broken` + "\n"
		case i%20 == 19 && len(recent) > 0:
			line = recent[rng.IntN(len(recent))]
		default:
			switch i % 3 {
			case 0:
				line = fmt.Sprintf(`{"id":"q%d","topic":"climate","question":%q,"answer":%q}`+"\n", i, sentence(12)+"?", sentence(60)+" <b>Note</b> &amp; more.")
			case 1:
				line = fmt.Sprintf(`{"id":"c%d","messages":[{"role":"system","content":"You are an environmental assistant."},{"role":"user","content":%q},{"role":"assistant","content":%q},{"role":"user","content":%q},{"role":"assistant","content":%q}]}`+"\n",
					i, sentence(15)+"?", sentence(80), sentence(10)+"?", sentence(50))
			default:
				line = fmt.Sprintf(`{"instruction":%q,"input":%q,"output":%q}`+"\n", sentence(10), sentence(30), sentence(70))
			}
			if len(recent) < 1000 {
				recent = append(recent, line)
			} else {
				recent[rng.IntN(len(recent))] = line
			}
		}
		n, err := w.WriteString(line)
		require.NoError(b, err)
		written += int64(n)
	}
	require.NoError(b, w.Flush())
	require.NoError(b, f.Close())
	return path, written
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func peakRSS() (int64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, l := range bytes.Split(status, []byte("\n")) {
		if f := strings.Fields(string(l)); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func BenchmarkPrepareJSONL(b *testing.B) {
	dir := b.TempDir()
	in, size := writeBenchJSONL(b, dir, benchSizeMB(b))
	runtime.GC()
	// Reset the peak RSS so VmHWM measures Prepare, not the generator
	// (Linux ≥ 4.0; where it fails the figure includes setup).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	b.SetBytes(size)
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	var man Manifest
	for i := 0; b.Loop(); i++ {
		var err error
		man, err = Prepare(context.Background(), Config{
			Inputs: []string{in}, OutputDir: filepath.Join(dir, "out"+strconv.Itoa(i%2)),
			Template: "chatml", Seed: 42, Val: 0.05, Test: 0.05,
		})
		require.NoError(b, err)
		require.NoError(b, os.RemoveAll(filepath.Join(dir, "out"+strconv.Itoa(i%2))))
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(size)*float64(b.N)/elapsed.Seconds()/1e6, "MB/s")
	// On a shared machine wall time says little; MB per CPU-second times
	// the cores is what an idle machine would reach.
	if cpu > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
	if rss, ok := peakRSS(); ok {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	}
	b.ReportMetric(float64(man.Records), "records")
}
