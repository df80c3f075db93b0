"""Fixtures shared by the test modules (plain helpers: tests/study_helpers.py)."""
import pytest

from study_helpers import four_cases


@pytest.fixture
def four_study(tmp_path):
    """A factory: ``four_study(**kw)`` writes ``study_helpers.four_cases(**kw)`` (the
    four-case Fig. 3-like study) as ``tmp_path/four.toml`` and returns its path; call it
    again to change the study in place."""
    def make(**kw):
        path = tmp_path / "four.toml"
        path.write_text(four_cases(**kw))
        return str(path)
    return make
