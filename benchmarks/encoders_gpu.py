"""HFEncoder on a GPU against the plain per-word loop, float32 / float16 / bfloat16.

The model is MiniLM-shaped: the packaged MiniLM's config.json and tokenizer files with
random weights (seed 0), so the script also runs where the packaged weights are not
installed (pass a folder with those files as the first argument). Speed depends on the
shapes only; the precision column is for random weights. Needs CUDA.

Usage: python benchmarks/encoders_gpu.py [SHAPE_DIR]
"""
import os, sys, time, shutil
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np, torch
from transformers import AutoConfig, AutoModel, AutoTokenizer
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoders import windows
from brainalign.encoders import HFEncoder

if len(sys.argv) > 1:
    src = sys.argv[1]
else:
    from brainalign.encoders.model import default_model_path
    src = str(default_model_path())
path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "brainalign_minilm_shaped")
os.makedirs(path, exist_ok=True)
for f in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    shutil.copy(os.path.join(src, f), path)
torch.manual_seed(0)
AutoModel.from_config(AutoConfig.from_pretrained(src)).save_pretrained(path)
words = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "story.txt")).read().split()
while len(words) < 2000: words = words + words
words = words[:2000]
K = 20

def loop(device, dtype, bs):
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=dtype).eval().to(device)
    out = []
    tl = windows(words, K)
    for lo in range(0, len(tl), bs):
        batch = tl[lo:lo + bs]
        enc = tok([t for t, _ in batch], padding=True, return_offsets_mapping=True, return_tensors="pt")
        off = enc.pop("offset_mapping")
        enc = {k: v.to(device) for k, v in enc.items()}
        with torch.no_grad():
            hs = model(**enc, output_hidden_states=True).hidden_states
        hs = torch.stack(hs, 0).float().cpu()
        for b, (text, start) in enumerate(batch):
            last = max(t for t, (a, e) in enumerate(off[b].tolist()) if e > a and e > start)
            out.append(hs[:, b, last].numpy())
    return np.stack(out, axis=1)

def best(fn, r=3):
    b, o = 1e9, None
    for _ in range(r):
        t = time.perf_counter(); o = fn()
        if torch.cuda.is_available(): torch.cuda.synchronize()
        b = min(b, time.perf_counter() - t)
    return b, o

print("device", torch.cuda.get_device_name(0), "cpu threads", torch.get_num_threads(), "words", len(words), "window", K)
rows = []
t_cpu, ref = best(lambda: HFEncoder(model=path, context_words=K, cache_dir=False, device="cpu", dtype="float32").encode(words).values, 1)
rows.append(("HFEncoder, CPU float32", t_cpu, 0.0))
for dt in ["float32", "float16", "bfloat16"]:
    HFEncoder(model=path, context_words=K, cache_dir=False, device="cuda", dtype=dt).encode(words[:50])
    t, v = best(lambda: HFEncoder(model=path, context_words=K, cache_dir=False, device="cuda", dtype=dt).encode(words).values)
    err = float(np.abs(v - ref).max() / np.abs(ref).max())
    rows.append((f"HFEncoder, GPU {dt}", t, err))
for dt, tdt in [("float32", torch.float32), ("float16", torch.float16)]:
    loop("cuda", tdt, 32)
    t, v = best(lambda: loop("cuda", tdt, 32))
    rows.append((f"plain per-word loop (batch 32), GPU {dt}", t, float(np.abs(v - ref).max() / np.abs(ref).max())))
print("| run | seconds | words/s | max abs diff / max abs (vs CPU float32) |\n|---|---:|---:|---:|")
for n, t, e in rows:
    print(f"| {n} | {t:.2f} | {len(words) / t:.0f} | {e:.1e} |")
