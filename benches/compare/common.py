"""Shared by the harness' modules: paths, the systems' names, and what the machine and its
processes are doing (/proc). No third-party imports: runs on any Python 3.9+."""
import statistics
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "benches" / "compare"
OUT = ROOT / "target" / "compare"
SETS = {"short": ROOT / "benches" / "data" / "short.txt", "long": ROOT / "benches" / "data" / "long.txt"}
SYSTEMS = ["inferd", "base", "st", "st-bf16", "ort", "ov", "infinity"]
NAMES = {
    "inferd": "inferd (HTTP)",
    "base": "inferd baseline (HTTP)",
    "st": "sentence-transformers",
    "st-bf16": "sentence-transformers bf16",
    "ort": "ONNX Runtime",
    "ov": "OpenVINO",
    "infinity": "Infinity (HTTP)",
}
# What inferd's throughput is divided by, in table order, with the column label.
BASELINES = {"base": "baseline", "st": "ST", "st-bf16": "ST bf16", "ort": "ORT", "ov": "OV", "infinity": "Infinity"}
DEFAULT_MODEL = ROOT / "models" / "all-MiniLM-L6-v2"
DISTURBED = 0.2  # cores used by other processes during a row above which it is marked †
REFERENCE = ROOT / "tests" / "fixtures" / "reference.jsonl"  # a copy of the shared reference set



def log(msg):
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_mem_mb(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    vals[k] = int(v.split()[0]) / 1024.0
    except FileNotFoundError:
        pass
    return vals.get("VmHWM"), vals.get("VmRSS")


def proc_cpu_s(pid):
    """user+system CPU seconds of a process."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def busy_cpu_s():
    """CPU seconds spent by the whole machine (all processes, all cores) since boot."""
    v = [int(x) for x in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_busy_pct(seconds=1.0):
    """Share of all cores busy over `seconds` (from /proc/stat), 0..100."""

    def snap():
        f = [int(x) for x in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return sum(f), idle

    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return round(100.0 * (1 - (i1 - i0) / max(1, t1 - t0)), 1)


def busy_report():
    """CPU use of everything else right now, load average and compilers running: the numbers are
    only fair on an otherwise idle machine."""
    rustc = 0
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in ("rustc", "cc1", "cc1plus", "ld", "cargo"):
                    rustc += 1
            except OSError:
                pass
    return {"cpu_busy_pct": cpu_busy_pct(), "load1": round(os.getloadavg()[0], 2), "compilers_running": rustc}


def is_busy(b):
    return b["cpu_busy_pct"] > 10 or b["compilers_running"] > 0


def wait_idle(max_wait, settle=0):
    """busy_report() once the machine is idle (for `settle` seconds in a row: a compile pauses
    between crates), or after about `max_wait` seconds of waiting."""
    busy, waited, idle_since = busy_report(), 0.0, 0.0
    while waited < max_wait and (is_busy(busy) or waited - idle_since < settle):
        if is_busy(busy):
            log(f"waiting for an idle machine: {busy}")
            idle_since = waited + 5
        time.sleep(4)
        waited += 5
        busy = busy_report()
    return busy


def machine_info():
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        for line in cpuinfo.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags]
                break
        mem = pathlib.Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["mem_gib"] = round(int(mem) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True)
        if rev.returncode == 0:
            return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return None


def versions():
    out = {}
    try:
        from importlib.metadata import version

        for m in ("torch", "sentence-transformers", "transformers", "onnxruntime", "onnx", "openvino", "tokenizers", "numpy"):
            try:
                out[m] = version(m)
            except Exception:
                pass
    except ImportError:
        pass
    return out



def print_ratio_table(runs, names, levels, baseline, heading, digits=2):
    """Markdown table of loadgen runs per (name, clients): medians over rounds, and each name's
    median (and range) of per-round texts/s ratios to `baseline` measured seconds apart."""
    med = statistics.median
    print(f"| {heading} | clients | texts/s | p50 ms | p99 ms | texts/s ÷ {baseline} (range) |")
    print("|---|---|---|---|---|---|")
    for c in levels:
        for n in names:
            v = runs[(n, c)]
            ratios = [a["rps"] / b["rps"] for a, b in zip(v, runs[(baseline, c)])]
            ratio = ("—" if n == baseline else
                     f"{med(ratios):.{digits}f}× ({min(ratios):.{digits}f}–{max(ratios):.{digits}f})")
            print(f"| {n} | {c} | {med([x['rps'] for x in v]):.0f} | {med([x['p50_ms'] for x in v]):.2f} "
                  f"| {med([x['p99_ms'] for x in v]):.2f} | {ratio} |")
