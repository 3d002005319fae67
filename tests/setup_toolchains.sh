#!/usr/bin/env bash
# Test set-up for the codegen differential tests: gcc, javac/java and node are expected on the
# machine; Go comes from Debian's golang-go (root, package registry only).  A toolchain that
# cannot be had makes its language's tests skip with a message (tests/test_codegen*.py).
set -uo pipefail
if ! command -v go >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends golang-go >/dev/null \
            || echo "golang-go could not be installed: Go codegen tests will be skipped" >&2
    else
        echo "not root (or no apt-get): cannot install golang-go; Go codegen tests will be skipped" >&2
    fi
fi
for tool in cc javac java node go; do
    command -v "$tool" >/dev/null 2>&1 || echo "codegen: $tool not found; its tests will be skipped" >&2
done
exit 0
