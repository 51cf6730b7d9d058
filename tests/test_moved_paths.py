"""fashrec 0.1's flat import paths keep working for one release, with a DeprecationWarning naming the new one."""
import importlib
import sys

import pytest

import fashrec
from fashrec._moved import MOVED, QUIET


@pytest.mark.parametrize("old", sorted(set(MOVED) - QUIET))
def test_old_path_warns_and_is_the_new_module(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert module.__spec__.name == MOVED[old]  # the real module keeps its own spec


def test_old_preprocess_path_leaves_the_function_in_place():
    sys.modules.pop("fashrec.preprocess", None)
    with pytest.warns(DeprecationWarning):
        from fashrec.preprocess import preprocess_batch  # noqa: F401
    assert callable(fashrec.preprocess) and fashrec.preprocess.__module__ == "fashrec.data.preprocess"


def test_public_pretrained_spelling_is_quiet(recwarn):
    assert fashrec.pretrained.path("paper-ae").name == "paper-ae"
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning) and "pretrained" in str(w.message)]
