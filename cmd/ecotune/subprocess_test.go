package main

import (
	"os"
	"testing"
)

// subprocessEnv makes the test binary run as ecotune itself, so subprocess tests run
// the very code under test without building a second binary.
const subprocessEnv = "ECOTUNE_TEST_RUN_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(subprocessEnv) == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
