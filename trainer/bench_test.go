package trainer

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func BenchmarkLogits(b *testing.B) {
	m := loadStories(b)
	tokens := make([]int32, 2*13)
	for i := range tokens {
		tokens[i] = int32(i + 3)
	}
	for b.Loop() {
		_, err := m.Logits(tokens, 2, 13, nil)
		require.NoError(b, err)
	}
}
