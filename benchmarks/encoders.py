"""Benchmark brainalign.encoders against a plain batched per-word loop (same process, same data).

Three comparisons (targets from issue 4):

1. exact K-word windows on the packaged MiniLM: ``HFEncoder`` (length-sorted
   batches, inference mode) vs a plain loop that batches the words in text order,
   pads each batch to its longest window and finds each word's last sub-token from
   the offsets. Target >= 1.5x.
2. causal model, ``context="run"``: the shared pass vs per-word passes of every
   prefix (batched in text order). Target >= 5x.
3. a cached re-run of (1) vs the plain loop. Target >= 100x.

Each result is checked against the anchor's values before any time is reported.
Run: ``HF_HUB_OFFLINE=1 python benchmarks/encoders.py [--words N] [--repeat R]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from brainalign.encoders import HFEncoder  # noqa: E402
from brainalign.encoders.model import default_model_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BRAINALIGN_SHARED_DATA", REPO.parent / "shared" / "data"))
ALICE = SHARED / "alice-fmri" / "stimulus" / "words.tsv"
FRANK = SHARED / "frank2015-eeg" / "data_EEG.csv"


def load_sentences(n_sentences: int) -> tuple[list[str], list[int]] | None:
    """Words and sentence ids of the Frank et al. (2015) sentences (one participant's order)."""
    if not FRANK.is_file():
        return None
    import pandas as pd

    t = pd.read_csv(FRANK, sep="\t", usecols=["subj_nr", "sent_nr", "word_pos", "word"], keep_default_na=False)
    t = t[t["subj_nr"] == t["subj_nr"].iloc[0]].sort_values(["sent_nr", "word_pos"], kind="mergesort")
    keep = t["sent_nr"].isin(pd.unique(t["sent_nr"])[:n_sentences])
    return t.loc[keep, "word"].astype(str).str.strip().tolist(), t.loc[keep, "sent_nr"].astype(int).tolist()


def load_words(n: int) -> tuple[list[str], str]:
    if ALICE.is_file():
        rows = [line.split("\t") for line in ALICE.read_text().splitlines()[1:] if line.strip()]
        words = [r[2].strip() for r in rows if len(r) > 2 and r[2].strip()]
        source = "Alice chapter 1 (shared data)"
    else:  # pragma: no cover - a deterministic stand-in text
        rng = np.random.default_rng(0)
        vocab = "the of and to a in was she it that her as said alice very little rabbit down hole".split()
        words = [str(w) for w in rng.choice(vocab, size=n)]
        source = "random words"
    while len(words) < n:
        words = words + words
    return words[:n], source


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def plain_loop(path: str, texts_and_lo: list[tuple[str, int]], batch_size: int) -> np.ndarray:
    """The anchor: batches in text order, padded to the batch's longest text; last sub-token of each word."""
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModel.from_pretrained(path).eval()
    out = []
    for lo in range(0, len(texts_and_lo), batch_size):
        batch = texts_and_lo[lo : lo + batch_size]
        enc = tok([t for t, _ in batch], padding=True, return_offsets_mapping=True, return_tensors="pt")
        off = enc.pop("offset_mapping")
        with torch.no_grad():
            hs = model(**enc, output_hidden_states=True).hidden_states
        for b, (text, start_char) in enumerate(batch):
            last = max(t for t, (a, e) in enumerate(off[b].tolist()) if e > a and e > start_char)
            out.append(torch.stack([h[b, last] for h in hs]).numpy())
    return np.stack(out, axis=1)


def windows(words: list[str], k: int) -> list[tuple[str, int]]:
    out = []
    for i in range(len(words)):
        text = " ".join(words[max(0, i - k + 1) : i + 1])
        out.append((text, len(text) - len(words[i])))
    return out


def build_causal(folder: Path, words: list[str]) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tk.train_from_iterator([" ".join(words)], trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>")
    tok.save_pretrained(folder)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=384, n_layer=6, n_head=6,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    GPT2Model(cfg).save_pretrained(folder)
    return str(folder)


def check(ours: np.ndarray, anchor: np.ndarray, what: str) -> float:
    err = float(np.abs(ours - anchor).max() / np.abs(anchor).max())
    if err > 1e-4:
        sys.exit(f"{what}: results differ from the anchor (max relative error {err:.2e})")
    return err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=1000, help="words for the MiniLM window benchmark")
    ap.add_argument("--causal-words", type=int, default=300, help="words for the causal run benchmark")
    ap.add_argument("--k", type=int, default=20, help="window size in words")
    ap.add_argument("--batch-size", type=int, default=32, help="the anchor's batch size (sequences)")
    ap.add_argument("--big-batch", type=int, default=256,
                    help="also time the anchor with this batch size (0 to skip), to show where the gain comes from")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=100, help="Frank 2015 sentences for the sentence-context row")
    args = ap.parse_args()

    words, source = load_words(max(args.words, args.causal_words))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} threads={torch.get_num_threads()}; words: {source}")
    tmp = Path(tempfile.mkdtemp(prefix="brainalign-bench-"))
    rows = []
    try:
        # 1. exact windows on MiniLM
        w = words[: args.words]
        minilm = str(default_model_path())
        plain_loop(minilm, windows(w[:40], args.k), args.batch_size)  # warm-up (loads, first-call costs)
        HFEncoder(context_words=args.k, cache_dir=False, progress=False).encode(w[:40])
        t_anchor, anchor = best_of(lambda: plain_loop(minilm, windows(w, args.k), args.batch_size), args.repeat)
        enc = HFEncoder(context_words=args.k, cache_dir=False, progress=False)  # default batching
        t_ours, ours = best_of(lambda: enc.encode(w), args.repeat)
        err = check(ours.values, anchor, "MiniLM windows")
        rows.append((f"MiniLM exact {args.k}-word windows, {len(w)} words, last sub-token "
                     f"(anchor batch {args.batch_size})", t_anchor, t_ours, 1.5, err, peak_rss_mb()))
        if args.big_batch:
            t_big, big = best_of(lambda: plain_loop(minilm, windows(w, args.k), args.big_batch), args.repeat)
            check(big, anchor, "anchor with big batches")
            rows.append((f"same, anchor with batch {args.big_batch} (in text order, padded per batch; reference)",
                         t_big, t_ours, None, err, peak_rss_mb()))

        # 1b. exact sentence-prefix contexts on MiniLM (per-word passes of varied length)
        sent = load_sentences(args.sentences)
        if sent is not None:
            sw, sid = sent
            texts = []
            for i in range(len(sw)):
                j = i
                while j > 0 and sid[j - 1] == sid[i]:
                    j -= 1
                text = " ".join(sw[j : i + 1])
                texts.append((text, len(text) - len(sw[i])))
            t_anchor_s, anchor_s = best_of(lambda: plain_loop(minilm, texts, args.batch_size), args.repeat)
            import pandas as pd

            table = pd.DataFrame({"word": sw, "sentence": sid})
            enc_s = HFEncoder(context="sentence", cache_dir=False, progress=False)
            t_ours_s, ours_s = best_of(lambda: enc_s.encode(table), args.repeat)
            err_s = check(ours_s.values, anchor_s, "MiniLM sentence prefixes")
            rows.append((f"MiniLM exact sentence-prefix contexts, {len(sw)} words in {len(set(sid))} sentences "
                         f"(Frank 2015; anchor batch {args.batch_size})", t_anchor_s, t_ours_s, 1.5, err_s,
                         peak_rss_mb()))

        # 3. cached re-run of (1)
        cache = tmp / "cache"
        HFEncoder(context_words=args.k, cache_dir=cache, progress=False).encode(w)
        t_cached, cached = best_of(
            lambda: HFEncoder(context_words=args.k, cache_dir=cache, progress=False).encode(w), max(3, args.repeat))
        assert cached.attrs["cache_hit"] == "true"
        err_c = check(cached.values, anchor, "cached re-run")
        cache_row = (f"cached re-run of the MiniLM windows ({len(w)} words, 7 layers)",
                     t_anchor, t_cached, 100.0, err_c, peak_rss_mb())

        # 2. causal: shared pass vs per-word prefix passes
        cw = words[: args.causal_words]
        causal = build_causal(tmp / "gpt2", words)
        prefixes = [(" ".join(cw[: i + 1]), len(" ".join(cw[: i + 1])) - len(cw[i])) for i in range(len(cw))]
        plain_loop(causal, prefixes[:20], args.batch_size)
        t_anchor2, anchor2 = best_of(lambda: plain_loop(causal, prefixes, args.batch_size), 1)
        enc2 = HFEncoder(model=causal, context="run", cache_dir=False, progress=False)
        t_ours2, ours2 = best_of(lambda: enc2.encode(cw), args.repeat)
        assert int(ours2.coords["context_start"].max()) == 0, "the run must fit one pass for this comparison"
        err2 = check(ours2.values, anchor2, "causal shared pass")
        rows.append((f"causal GPT-2 (6x384, random weights), context='run', {len(cw)} words: shared pass "
                     "vs per-word prefix passes", t_anchor2, t_ours2, 5.0, err2, peak_rss_mb()))
        rows.append(cache_row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("| comparison | anchor (s) | brainalign (s) | speed-up | target | max rel. diff | process peak RSS so far (MB) |")
    print("|---|---|---|---|---|---|---|")
    for name, ta, to, target, err, rss in rows:
        ratio = ta / to
        goal = "-" if target is None else f">= {target:g}x ({'met' if ratio >= target else 'NOT met'})"
        print(f"| {name} | {ta:.3f} | {to:.4f} | {ratio:.1f}x | {goal} | {err:.1e} | {rss:.0f} |")


if __name__ == "__main__":
    main()
