"""Example suite that produces every outcome pytest knows.

Copied into a temporary project as ``tests/e2e/test_outcomes.py`` by
``test_real_runners.py``; the ``suite_`` name keeps the main run from
collecting it.
"""

import pytest


@pytest.fixture
def broken_setup():
    raise ConnectionError("boom")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown exploded")


def test_pass():
    assert True


@pytest.mark.p1
@pytest.mark.e2e
def test_pass_marked():
    print("some captured output")


def test_fail():
    assert 1 == 2, "numbers differ"


def test_setup_error(broken_setup):
    pass


def test_teardown_error_on_pass(broken_teardown):
    pass


def test_teardown_error_on_fail(broken_teardown):
    raise ValueError("call failed too")


def test_skip():
    pytest.skip("not today")


@pytest.mark.skip(reason="marked skip")
def test_skip_marked():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 1 == 0


@pytest.mark.xfail(reason="should fail but passes", strict=True)
def test_xpass_strict():
    pass


@pytest.mark.xfail(reason="flaky")
def test_xpass():
    pass


def test_subtests_some_fail(subtests):
    for i in range(3):
        with subtests.test(msg="step", i=i):
            assert i != 1, f"step {i} broke"


def test_subtests_all_pass(subtests):
    for i in range(2):
        with subtests.test(i=i):
            assert True


@pytest.mark.parametrize("word", ["ascii", "naïve", "日本語", "a b", "x.y", "a-ü"])
def test_param(word):
    assert word


def test_record(record_property):
    record_property("ticket", "LD-1")
    record_property("attempts", 3)


class TestAgent:
    def test_method(self):
        pass

    def test_method_fail(self):
        raise KeyError("missing")

    class TestNested:
        @pytest.mark.parametrize("n", [1, 2])
        def test_inner(self, n):
            assert n
