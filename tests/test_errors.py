import pytest

from brainalign import errors


def test_every_error_derives_from_base():
    for name in dir(errors):
        obj = getattr(errors, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, Exception)
            and not issubclass(obj, Warning)  # warning categories are not errors
            and obj.__module__ == errors.__name__
        ):
            assert issubclass(obj, errors.BrainAlignError), name


@pytest.mark.parametrize("bad", ["", "..", "a/b", "a\\b", "x_y", "../etc"])
def test_unsafe_labels_refused(bad):
    with pytest.raises(errors.UnsafeNameError):
        errors.check_safe_label(bad, "participant")


def test_safe_label_passes():
    assert errors.check_safe_label("MiniLM-L6.v2", "model") == "MiniLM-L6.v2"
