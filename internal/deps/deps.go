//go:build tools

// Package deps pins module requirements before the packages that use them land.
package deps

import (
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/parquet-go/parquet-go"
	_ "github.com/pelletier/go-toml/v2"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/stretchr/testify/require"
	_ "github.com/urfave/cli/v2"
	_ "golang.org/x/text/unicode/norm"
)
