"""User adapters (``kind: adapter``, ``adapter: mylab.loaders:load_subject``) run from the CLI (issue 15)."""
from __future__ import annotations

import textwrap
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import yaml
from _layouts import cli, layer_r, planted_flat, simulate, separated

LOADERS = '''
"""A lab's own loader: reads the simulated BIDS files with nibabel, no brainalign.io."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from brainalign.data import make_recording


def list_participants(root):
    return sorted(p.name[4:] for p in Path(root).glob("sub-*"))


def load_subject(root, participant, mask=None):
    func = Path(root) / f"sub-{participant}" / "func"
    m = np.asarray(nib.load(mask).dataobj) > 0
    Y, times, runs, words = [], [], [], []
    for run in (1, 2):
        img = nib.load(func / f"sub-{participant}_task-story_run-{run}_bold.nii.gz")
        data = np.asarray(img.get_fdata())[m].T
        Y.append(data)
        times.append(np.arange(data.shape[0]) * 2.0)
        runs += [str(run)] * data.shape[0]
        ev = pd.read_csv(func / f"sub-{participant}_task-story_run-{run}_events.tsv", sep="\\t")
        words.append(ev.assign(run=str(run))[["word", "onset", "duration", "run"]])
    flat = np.flatnonzero(m.ravel())
    rec = make_recording(np.concatenate(Y), np.concatenate(times), runs, modality="fmri", tr=2.0, target=flat)
    return rec, pd.concat(words, ignore_index=True)


def wrong(root, participant):
    return {"recording": None}
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory, layout_cache):
    cache = layout_cache
    sim = tmp_path_factory.mktemp("sim") / "ds"
    truth = simulate(sim, cache, seed=9)
    code = tmp_path_factory.mktemp("code")
    (code / "mylab").mkdir()
    (code / "mylab" / "__init__.py").write_text("")
    (code / "mylab" / "loaders.py").write_text(textwrap.dedent(LOADERS))
    return sim, truth, cache, code


def _config(tmp_path, sim, truth, adapter, **extra):
    src = {"kind": "adapter", "adapter": adapter, "root": str(sim), "task": "story",
           "options": {"mask": str(sim / truth["mask"])}, **extra}
    cfg = {"data": {"source": src},
           "models": [{"label": "MiniLM", "path": "packaged:minilm", "layers": [0, 1], "context_words": 20}],
           "scoring": {"methods": ["encoding"], "inner_cv": 2, "alphas": [1.0, 100.0, 10000.0], "cv": {"n_folds": 2},
                       "permutations": 0},  # no p is read here: no shift null
           "statistics": {"n_bootstrap": 10, "group_test": "none"}, "outputs": {"report": False}}
    path = tmp_path / f"adapter-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_user_adapter_by_module_path_finds_the_planted_voxels(lab, tmp_path):
    sim, truth, cache, code = lab
    out = tmp_path / "out"
    res = cli(["run", _config(tmp_path, sim, truth, "mylab.loaders:load_subject"), "--output", out, "--quiet",
               "--skip-group"], cache, env={"PYTHONPATH": str(code)})
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out / "sub-01" / "func" / "sub-01_task-story_desc-MiniLM_scores.tsv", sep="\t",
                        na_values="n/a")
    r1 = layer_r(table)
    planted, noise = planted_flat(sim, truth)
    assert set(r1.index) == planted | noise
    assert separated(r1, planted, noise)


def test_adapter_errors_are_one_line_naming_the_field(lab, tmp_path):
    sim, truth, cache, code = lab
    cases = [("mylab.nope:load_subject", "cannot import mylab.nope"),
             ("mylab.loaders:absent", "has no function absent()"),
             (str(code / "mylab" / "loaders.py") + ":wrong", "must return Loaded")]
    cfgs = [_config(tmp_path, sim, truth, adapter, options={}) for adapter, _ in cases]
    with ThreadPoolExecutor(3) as pool:  # each call is a fresh interpreter: run them side by side
        results = list(pool.map(lambda c: cli(["run", c, "--output", tmp_path / c.stem, "--quiet"], cache,
                                              env={"PYTHONPATH": str(code)}), cfgs))
    for (adapter, text), res in zip(cases, results):
        assert res.returncode == 2, (adapter, res.stderr)
        assert "data.source.adapter" in res.stderr and text in res.stderr and "Traceback" not in res.stderr, res.stderr
    res = cli(["run", _config(tmp_path, sim, truth, "not a function"), "--output", tmp_path / "o"], cache)
    assert res.returncode == 2 and "data.source.adapter" in res.stderr
