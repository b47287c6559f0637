package main

import "github.com/ecotune/ecotune/internal/atomicfile"

// writeFileAtomic replaces path with data through a synced temporary file and a rename:
// a run killed while writing train_config.json must leave the old one (which --resume
// reads) or the new one, never half of either.
func writeFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data, 0o644) }
