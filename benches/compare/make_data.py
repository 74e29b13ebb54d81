"""Regenerates benches/data/{short,long}.txt from ../shared/data (run with the bench venv).

short.txt: the first 512 lines of shared/data/short.txt (~12 tokens each).
long.txt:  the first 128 lines of shared/data/long.txt whose all-MiniLM-L6-v2 tokenization
           (with [CLS]/[SEP]) is 160..250 tokens, so none is truncated at 256 (~195 tokens mean).
The committed files are the benchmark's input; this script only documents how they were cut.
"""
import argparse
import pathlib

from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]

ap = argparse.ArgumentParser()
ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
ap.add_argument("--model", required=True, help="all-MiniLM-L6-v2 directory (for tokenizer.json)")
a = ap.parse_args()

tok = Tokenizer.from_file(str(pathlib.Path(a.model) / "tokenizer.json"))
tok.no_padding()
tok.no_truncation()
short = pathlib.Path(a.shared, "short.txt").read_text().splitlines()[:512]
long_all = pathlib.Path(a.shared, "long.txt").read_text().splitlines()
lens = [len(e.ids) for e in tok.encode_batch(long_all)]
long = [t for t, n in zip(long_all, lens) if 160 <= n <= 250][:128]
out = ROOT / "benches" / "data"
out.mkdir(parents=True, exist_ok=True)
(out / "short.txt").write_text("\n".join(short) + "\n")
(out / "long.txt").write_text("\n".join(long) + "\n")
for name, lines in [("short", short), ("long", long)]:
    n = [len(e.ids) for e in tok.encode_batch(lines)]
    print(f"{name}: {len(lines)} lines, mean {sum(n) / len(n):.1f} tokens, max {max(n)}")
