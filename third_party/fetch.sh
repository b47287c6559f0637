#!/usr/bin/env bash
# Obtains the pinned llama.cpp source into third_party/llama.cpp (git-ignored).
#
# Order of preference:
#   1. LLAMA_CPP_SRC=/path: an existing checkout, which must be at the pinned commit.
#   2. third_party/llama.cpp already at the pinned commit: nothing to do.
#   3. The bundle cached in $ECOTUNE_CACHE/npm (sha256 checked again before use).
#   4. `npm pack` of the pinned package, its bundle checked against the pin, then cached.
#
# Then the patches in third_party/patches (ecotune's additions to llama.cpp, each a
# `git diff` of the pinned commit, in name order) are applied once: to the checkout, the
# export or LLAMA_CPP_SRC's checkout alike. scripts/build-native.sh keys its build on
# them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/llama.cpp"
# shellcheck source=/dev/null
source <(grep -E '^[A-Z0-9_]+=' "$here/llama.cpp.pin")
cache="${ECOTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecotune}"

die() { echo "third_party/fetch.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"; }

commit_of() { git -C "$1" rev-parse HEAD 2>/dev/null || true; }

# apply_patches applies each patch not yet applied to the tree at $1 and exits. git apply
# runs in the tree with the directory above it as a ceiling, so that an export (no .git)
# is patched as plain files rather than as a part of the repository around it. The tree's
# .ecotune-patches lists each applied patch with its sha256: a later patch may change
# lines an earlier one wrote, after which the earlier one no longer reverses cleanly on
# its own, so the list, not a reverse check, says what is applied. A tree patched before
# the list existed has none; there the reverse check decides, in order, and its answers
# go into the list.
apply_patches() {
  local tree p sum stamp legacy=0
  tree="$(cd "$1" && pwd -P)"
  stamp="$tree/.ecotune-patches"
  [[ -f "$stamp" ]] || legacy=1
  for p in "$here"/patches/*.patch; do
    [[ -f "$p" ]] || continue
    sum="$(sha256sum "$p" | cut -d' ' -f1)"
    if grep -qxF "$(basename "$p") $sum" "$stamp" 2>/dev/null; then
      continue
    fi
    if ((legacy)) && (cd "$tree" && GIT_CEILING_DIRECTORIES="$(dirname "$tree")" git apply --reverse --check "$p" 2>/dev/null); then
      echo "$(basename "$p") $sum" >>"$stamp"
      continue
    fi
    (cd "$tree" && GIT_CEILING_DIRECTORIES="$(dirname "$tree")" git apply "$p") ||
      die "$(basename "$p") does not apply to $tree (a llama.cpp other than the pinned $LLAMA_CPP_COMMIT, or edited): remove $dest to fetch it again"
    echo "$(basename "$p") $sum" >>"$stamp"
    echo "third_party/fetch.sh: applied $(basename "$p")" >&2
  done
  exit 0
}

if [[ -n "${LLAMA_CPP_SRC:-}" ]]; then
  [[ -d "$LLAMA_CPP_SRC" ]] || die "LLAMA_CPP_SRC=$LLAMA_CPP_SRC is not a directory"
  got="$(commit_of "$LLAMA_CPP_SRC")"
  [[ "$got" == "$LLAMA_CPP_COMMIT" ]] ||
    die "LLAMA_CPP_SRC=$LLAMA_CPP_SRC is at commit '${got:-none}', the pin wants $LLAMA_CPP_COMMIT"
  src="$(cd "$LLAMA_CPP_SRC" && pwd)"
  if [[ "$(readlink "$dest" 2>/dev/null || true)" != "$src" ]]; then
    rm -rf "$dest"
    ln -s "$src" "$dest"
  fi
  apply_patches "$src"
fi

if [[ -L "$dest" ]]; then rm -f "$dest"; fi
if [[ -d "$dest" && "$(commit_of "$dest")" == "$LLAMA_CPP_COMMIT" ]]; then
  apply_patches "$dest"
fi
# An export of the pinned commit without git metadata, as scripts/gpu-check.sh unpacks it
# from the kit that scripts/gpu-kit.sh made out of a checked checkout.
if [[ -d "$dest" && ! -e "$dest/.git" && -f "$dest/.ecotune-commit" ]]; then
  [[ "$(cat "$dest/.ecotune-commit")" == "$LLAMA_CPP_COMMIT" ]] ||
    die "$dest is an export of commit $(cat "$dest/.ecotune-commit"), the pin wants $LLAMA_CPP_COMMIT: remove it"
  apply_patches "$dest"
fi

need git "install it with apt-get install git"
need sha256sum "install coreutils"

bundle="$cache/npm/$NPM_PACKAGE-$NPM_VERSION.bundle"
if [[ -f "$bundle" ]] && ! echo "$BUNDLE_SHA256  $bundle" | sha256sum -c --status; then
  echo "third_party/fetch.sh: cached bundle $bundle does not match the pin; fetching again" >&2
  rm -f "$bundle"
fi

if [[ ! -f "$bundle" ]]; then
  need npm "install Node.js and npm (apt-get install npm), or set LLAMA_CPP_SRC to a checkout of $LLAMA_CPP_COMMIT"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "third_party/fetch.sh: fetching $NPM_PACKAGE@$NPM_VERSION with npm pack" >&2
  (cd "$tmp" && npm pack --silent "$NPM_PACKAGE@$NPM_VERSION" >/dev/null)
  tgz="$tmp/$NPM_PACKAGE-$NPM_VERSION.tgz"
  [[ -f "$tgz" ]] || die "npm pack did not produce $tgz"
  if ! echo "$NPM_TARBALL_SHA256  $tgz" | sha256sum -c --status; then
    die "sha256 of $NPM_PACKAGE-$NPM_VERSION.tgz is $(sha256sum "$tgz" | cut -d' ' -f1), the pin says $NPM_TARBALL_SHA256: refusing to build from it"
  fi
  tar -xzf "$tgz" -C "$tmp" "$BUNDLE_PATH"
  if ! echo "$BUNDLE_SHA256  $tmp/$BUNDLE_PATH" | sha256sum -c --status; then
    die "sha256 of $BUNDLE_PATH is $(sha256sum "$tmp/$BUNDLE_PATH" | cut -d' ' -f1), the pin says $BUNDLE_SHA256: refusing to build from it"
  fi
  mkdir -p "$(dirname "$bundle")"
  mv "$tmp/$BUNDLE_PATH" "$bundle.tmp"
  mv "$bundle.tmp" "$bundle"
fi

rm -rf "$dest" "$dest.tmp"
git clone --quiet "$bundle" "$dest.tmp" 2>/dev/null || die "git could not clone $bundle"
git -C "$dest.tmp" checkout --quiet "$LLAMA_CPP_COMMIT" 2>/dev/null ||
  die "the bundle does not hold commit $LLAMA_CPP_COMMIT"
# A fresh tree has no patch applied: an empty list, so that every patch is applied rather
# than taken as applied where it reverses cleanly (an earlier patch that took in a later
# one's change once hid the later one that way).
: >"$dest.tmp/.ecotune-patches"
mv "$dest.tmp" "$dest"
echo "third_party/fetch.sh: llama.cpp $LLAMA_CPP_TAG ($LLAMA_CPP_COMMIT) in third_party/llama.cpp" >&2
apply_patches "$dest"
