#!/usr/bin/env bash
# mypy --strict on the installed package layout. The repository's folders are mapped into
# nbo_recorder by setuptools' package-dir, which mypy cannot follow through the editable
# install's import hook, so mypy checks a tree of symlinks laid out as the wheel is.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree"
cp -rs "$PWD/recorder" "$tree/nbo_recorder"
ln -s "$PWD/drivers" "$tree/nbo_recorder/drivers"
ln -s "$PWD/mocks" "$tree/nbo_recorder/sim"
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
mypy "$tree/nbo_recorder" "$@"
