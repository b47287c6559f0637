#!/usr/bin/env bash
# gpu-kit.sh packs, here, what scripts/gpu-check.sh needs on a GPU machine that has the CUDA
# toolkit, CMake and ninja but no Go and no network (the device machines lent to some
# sessions): a Go toolchain trimmed to what `go build` and `go test -vet=off` run, the
# module's dependencies vendored, and the pinned llama.cpp source without its docs and models
# (but with the vocabularies the tests read). The test models are committed under testdata/
# and travel with the working tree.
#
# Output: .gpu-kit/ (git-ignored, about 40 MiB), to name in the device tool's `carry`.
# Usage: scripts/gpu-kit.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kit="$root/.gpu-kit"
die() { echo "scripts/gpu-kit.sh: $*" >&2; exit 1; }

"$root/third_party/fetch.sh"
src="$root/third_party/llama.cpp"
# shellcheck source=/dev/null
source <(grep -E '^[A-Z0-9_]+=' "$root/third_party/llama.cpp.pin")
[[ "$(git -C "$src" rev-parse HEAD)" == "$LLAMA_CPP_COMMIT" ]] || die "$src is not at the pinned commit"

rm -rf "$kit.tmp"
mkdir -p "$kit.tmp"

# Go: the go command, the tools a cgo build, link and test run, and the standard library's
# sources (Go builds them into its cache); not cmd/'s sources, tests or test data.
goroot="$(go env GOROOT)"
tools="pkg/tool/$(go env GOOS)_$(go env GOARCH)"
tar -C "$goroot" -cf - --exclude='*_test.go' --exclude=testdata --exclude=src/cmd \
  bin/go "$tools/compile" "$tools/link" "$tools/asm" "$tools/cgo" "$tools/vet" src go.env VERSION pkg/include |
  xz -T0 -6 >"$kit.tmp/go.tar.xz"

(cd "$root" && go mod vendor -o "$kit.tmp/vendor")
tar -C "$kit.tmp" -cf - vendor | xz -T0 -6 >"$kit.tmp/vendor.tar.xz"
rm -rf "$kit.tmp/vendor"

# llama.cpp at the pinned commit, as git stores it, without what the build does not read;
# .ecotune-commit tells third_party/fetch.sh which commit the export is.
vocabs=(models/ggml-vocab-llama-spm.gguf models/ggml-vocab-phi-3.gguf models/ggml-vocab-gpt-2.gguf)
{
  git -C "$src" archive --format=tar --prefix=llama.cpp/ "$LLAMA_CPP_COMMIT" -- . \
    ':!docs' ':!models' ':!benches' ':!media' ':!tests' ':!gguf-py' ':!tools/server/public*' ':!tools/server/webui'
} >"$kit.tmp/llama.cpp.tar"
tar -C "$kit.tmp" -xf "$kit.tmp/llama.cpp.tar" && rm "$kit.tmp/llama.cpp.tar"
mkdir -p "$kit.tmp/llama.cpp/models"
for v in "${vocabs[@]}"; do cp "$src/$v" "$kit.tmp/llama.cpp/$v"; done
echo "$LLAMA_CPP_COMMIT" >"$kit.tmp/llama.cpp/.ecotune-commit"
tar -C "$kit.tmp" -cf - llama.cpp | xz -T0 -6 >"$kit.tmp/llama.cpp.tar.xz"
rm -rf "$kit.tmp/llama.cpp"

{
  echo "made $(date -u +%FT%TZ) from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "go $(go env GOVERSION) llama.cpp $LLAMA_CPP_COMMIT"
  (cd "$kit.tmp" && find . -type f ! -name MANIFEST -print0 | sort -z | xargs -0 sha256sum)
} >"$kit.tmp/MANIFEST"

rm -rf "$kit"
mv "$kit.tmp" "$kit"
echo "scripts/gpu-kit.sh: $(du -sh "$kit" | cut -f1) in $kit" >&2
