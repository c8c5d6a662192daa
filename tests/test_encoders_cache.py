"""The activation cache: hits are bit-identical, corruption is recovered, writers are safe."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from brainalign.encoders import CacheWarning, HFEncoder, clear, default_cache_dir, disk_usage, list_entries
from brainalign.encoders.cache import ActivationCache, fingerprint_folder
from test_encoders import WORDS, build_tiny_gpt2

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2cache"), n_positions=64)


def _entry(cache_dir) -> Path:
    (row,) = list_entries(cache_dir)
    return Path(row["path"])


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINALIGN_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BRAINALIGN_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "brainalign"


def test_hit_is_bit_identical_and_keyed_on_every_choice(tiny, tmp_path):
    enc = HFEncoder(model=tiny, context_words=4, cache_dir=tmp_path)
    first = enc.encode(WORDS)
    assert not enc.cache_hit_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = HFEncoder(model=tiny, context_words=4, cache_dir=tmp_path).encode(WORDS)
    assert again.attrs["cache_hit"] == "true"
    assert again.values.tobytes() == first.values.tobytes()
    np.testing.assert_array_equal(again.coords["context_start"], first.coords["context_start"])
    assert again.coords["text"].values.tolist() == first.coords["text"].values.tolist()
    assert {k: v for k, v in again.attrs.items() if k != "cache_hit"} == {
        k: v for k, v in first.attrs.items() if k != "cache_hit"
    }
    # anything that changes the numbers is a different entry
    for kw, words in [({"context_words": 5}, WORDS), ({"pooling": "mean"}, WORDS),
                      ({"context": "run"}, WORDS), ({}, WORDS[:-1] + ["other"])]:
        e = HFEncoder(model=tiny, **{"context_words": 4, **kw}, cache_dir=tmp_path)
        e.encode(words)
        assert not e.cache_hit_, kw
    assert len(list_entries(tmp_path)) == 5


def test_layers_are_stored_and_read_one_by_one(tiny, tmp_path):
    full = HFEncoder(model=tiny, context_words=3, cache_dir=False).encode(WORDS)
    HFEncoder(model=tiny, context_words=3, layers=[0, 2], cache_dir=tmp_path).encode(WORDS)
    folder = _entry(tmp_path)
    assert sorted(p.name for p in folder.glob("layer-*.npy")) == ["layer-000.npy", "layer-002.npy"]
    stamp = (folder / "layer-002.npy").stat().st_mtime_ns
    one = HFEncoder(model=tiny, context_words=3, layers=[2], cache_dir=tmp_path)
    out = one.encode(WORDS)
    assert one.cache_hit_ and out.shape == (1, len(WORDS), 32)
    two = HFEncoder(model=tiny, context_words=3, layers=[1, 2], cache_dir=tmp_path)
    out = two.encode(WORDS)
    assert not two.cache_hit_
    assert (folder / "layer-002.npy").stat().st_mtime_ns == stamp  # only the missing layer was written
    assert list_entries(tmp_path)[0]["layers"] == [0, 1, 2]
    np.testing.assert_array_equal(out.values, full.sel(layer=[1, 2]).values)


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_record"])
def test_corrupted_entry_is_detected_and_recomputed(tiny, tmp_path, damage):
    ref = HFEncoder(model=tiny, context_words=4, cache_dir=tmp_path).encode(WORDS)
    path = _entry(tmp_path) / "layer-001.npy"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-7] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        path.with_suffix(".json").unlink()
    enc = HFEncoder(model=tiny, context_words=4, cache_dir=tmp_path)
    if damage == "drop_record":
        out = enc.encode(WORDS)
    else:
        with pytest.warns(CacheWarning, match="corrupted"):
            out = enc.encode(WORDS)
    assert not enc.cache_hit_
    assert out.values.tobytes() == ref.values.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: the next read is a clean hit
        again = HFEncoder(model=tiny, context_words=4, cache_dir=tmp_path)
        again.encode(WORDS)
    assert again.cache_hit_


_WRITER = """
import os, sys, time
from pathlib import Path
os.environ["HF_HUB_OFFLINE"] = "1"
from brainalign.encoders import HFEncoder
model, cache, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
words = sys.argv[4].split("|")
enc = HFEncoder(model=model, context_words=4, cache_dir=cache)
enc.encode(words[:2])  # load everything first, so both writers race on the real entry
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.005)
for _ in range(3):
    HFEncoder(model=model, context_words=4, cache_dir=cache).encode(words)
print("done")
"""


def test_concurrent_writers_leave_a_valid_entry(tiny, tmp_path):
    cache, go = tmp_path / "cache", tmp_path / "go"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, tiny, str(cache), str(go), "|".join(WORDS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        for _ in range(2)
    ]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    go.touch()  # both writers start together
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert out.strip().endswith("done")
    want = HFEncoder(model=tiny, context_words=4, cache_dir=False).encode(WORDS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = HFEncoder(model=tiny, context_words=4, cache_dir=cache)
        got = enc.encode(WORDS)
    assert enc.cache_hit_
    np.testing.assert_array_equal(got.values, want.values)
    leftovers = [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_array_writes_racing_with_reads_never_expose_partial_files(tmp_path):
    key = "ab" * 32
    arr = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32)
    code = (
        "import sys, numpy as np\n"
        "from brainalign.encoders.cache import ActivationCache\n"
        "c = ActivationCache(sys.argv[1])\n"
        "a = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32)\n"
        "for _ in range(40):\n"
        "    c.write_array(sys.argv[2], 0, a)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), key], env=env) for _ in range(2)]
    cache = ActivationCache(tmp_path)
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        while any(p.poll() is None for p in procs):
            got = cache.read_array(key, 0)
            if got is not None:
                np.testing.assert_array_equal(got, arr)
                seen += 1
    assert all(p.returncode == 0 for p in procs)
    np.testing.assert_array_equal(cache.read_array(key, 0), arr)
    assert seen > 0


def test_model_fingerprint_follows_file_contents(tiny, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny, folder)
    a = fingerprint_folder(folder, tmp_path / "cache")
    assert fingerprint_folder(folder, tmp_path / "cache") == a
    memo = next((tmp_path / "cache" / "fingerprints").glob("*.json"))
    assert "model.safetensors" in json.loads(memo.read_text())
    cfg = folder / "config.json"
    cfg.write_text(cfg.read_text().replace('"n_head": 2', '"n_head": 4'))
    assert fingerprint_folder(folder, tmp_path / "cache") != a
    (folder / "README.md").write_text("docs do not change the numbers")
    b = fingerprint_folder(folder, tmp_path / "cache")
    assert fingerprint_folder(folder, False) == b


def test_ls_du_clear(tiny, tmp_path):
    HFEncoder(model=tiny, context_words=2, layers=[1], cache_dir=tmp_path).encode(WORDS[:8])
    HFEncoder(model=tiny, context="run", cache_dir=tmp_path).encode(WORDS[:8])
    (tmp_path / "unrelated.txt").write_text("keep me")
    rows = list_entries(tmp_path)
    assert len(rows) == 2
    assert {r["context"] for r in rows} == {"window", "run"}
    assert all(r["n_words"] == 8 and r["bytes"] > 0 and r["model"] == tiny for r in rows)
    assert sorted(len(r["layers"]) for r in rows) == [1, 3]
    total = disk_usage(tmp_path)
    assert total >= sum(r["bytes"] for r in rows)
    assert clear(tmp_path) == {"entries": 2, "bytes": total}
    assert list_entries(tmp_path) == [] and disk_usage(tmp_path) == 0
    assert (tmp_path / "unrelated.txt").read_text() == "keep me"
    assert list_entries(tmp_path / "missing") == [] and disk_usage(tmp_path / "missing") == 0
