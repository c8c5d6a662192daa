"""Reports with a nilearn viewer are the same bytes at every render (reruns, resumed runs)."""
from __future__ import annotations

import re

import numpy as np
import nibabel as nib
from nilearn import plotting

from brainalign.pipeline.report_html import stable_viewer_ids, viewer


def _page(data: np.ndarray) -> str:
    img = nib.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    return plotting.view_img(img, threshold=0.1, bg_img=False, symmetric_cmap=True).get_standalone()


def test_two_renders_of_one_map_embed_identically():
    data = np.random.default_rng(0).normal(size=(8, 9, 7))
    a, b = _page(data), _page(data)
    assert a != b  # nilearn draws new random ids each time: what the report must not pass on
    assert viewer(a, "r") == viewer(b, "r")
    assert stable_viewer_ids(a) == stable_viewer_ids(b)


def test_other_maps_keep_distinct_ids_and_text_without_ids_is_untouched():
    rng = np.random.default_rng(1)
    a, b = stable_viewer_ids(_page(rng.normal(size=(8, 9, 7)))), stable_viewer_ids(_page(rng.normal(size=(8, 9, 7))))
    ids_a, ids_b = set(re.findall(r"3Dviewer-([0-9a-f]{32})", a)), set(re.findall(r"3Dviewer-([0-9a-f]{32})", b))
    assert a != b and ids_a and ids_b
    assert ids_a.isdisjoint(ids_b)
    text = "sha256 3Dviewer-" + "a" * 64 + " plain"
    assert stable_viewer_ids(text) == text  # a 64-hex digest is not a viewer id
