"""Output files: atomic writes with the process umask's modes."""
from __future__ import annotations

import os
import stat

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.pipeline import outputs


def _write_all(folder):
    return [
        outputs.write_text(folder / "a.txt", "x\n"),
        outputs.write_json(folder / "b.json", {"a": 1}),
        outputs.write_tsv(folder / "c.tsv", pd.DataFrame({"a": [1.0, np.nan]})),
        outputs.write_nifti(folder / "d.nii.gz", nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))),
    ]


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                        (0o002, 0o664, 0o775)])
def test_files_get_the_umask_mode(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        paths = _write_all(tmp_path / "new" / "sub")
        assert outputs.process_umask() == umask
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == file_mode, p
    assert stat.S_IMODE((tmp_path / "new" / "sub").stat().st_mode) == dir_mode
    assert not [p for p in (tmp_path / "new" / "sub").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with outputs.atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
