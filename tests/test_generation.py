"""Generation building blocks: config validation, the sampler, stop strings."""
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qvl_local.errors import QvlError
from qvl_local.generation import (
    GenerationConfig,
    GenerationConfigError,
    GenerationResult,
    Sampler,
    StopStringMatcher,
    apply_repetition_penalty,
)

VOCAB = 151936


def _logits(seed: int, size: int = VOCAB) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(size) * 2.4).astype(np.float32)


def _draws(config: GenerationConfig, logits: np.ndarray, count: int) -> list[int]:
    sampler = Sampler(config)
    return [sampler.sample(logits, []) for _ in range(count)]


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    shifted = np.exp((logits.astype(np.float64) - logits.max()) / temperature)
    return shifted / shifted.sum()


# --- config -------------------------------------------------------------------------------------

def test_config_defaults():
    config = GenerationConfig()
    assert (config.max_new_tokens, config.temperature, config.top_k, config.top_p, config.min_p,
            config.repetition_penalty, config.seed, config.stop) == (256, 0.0, 0, 1.0, 0.0, 1.0, None, ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.temperature = 1.0  # type: ignore[misc]


def test_config_stop_accepts_a_string_or_a_list():
    assert GenerationConfig(stop="###").stop == ("###",)
    assert GenerationConfig(stop=["a", "bc"]).stop == ("a", "bc")  # type: ignore[arg-type]
    assert dataclasses.replace(GenerationConfig(stop=("x",)), seed=3).stop == ("x",)


@pytest.mark.parametrize("kwargs", [
    {"max_new_tokens": 0}, {"max_new_tokens": 2.5}, {"max_new_tokens": True},
    {"temperature": -0.1}, {"temperature": math.nan}, {"temperature": math.inf}, {"temperature": "hot"},
    {"top_k": -1}, {"top_k": 1.0},
    {"top_p": 0.0}, {"top_p": 1.01},
    {"min_p": -0.01}, {"min_p": 1.5},
    {"repetition_penalty": 0.0}, {"repetition_penalty": -1.0},
    {"seed": -1}, {"seed": "42"},
    {"stop": ("",)}, {"stop": ("ok", 3)},
])
def test_config_rejects_invalid_values(kwargs):
    with pytest.raises(GenerationConfigError) as caught:
        GenerationConfig(**kwargs)
    assert isinstance(caught.value, QvlError) and isinstance(caught.value, ValueError)
    assert next(iter(kwargs)) in str(caught.value)


def test_generation_result_fields():
    result = GenerationResult(text="hi", token_ids=[1, 2], prompt_tokens=7, finish_reason="length")
    assert (result.text, result.token_ids, result.prompt_tokens, result.finish_reason) == (
        "hi", [1, 2], 7, "length")


# --- greedy and repetition penalty ------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_greedy_is_argmax(seed):
    logits = _logits(seed)
    assert Sampler(GenerationConfig()).sample(logits, [1, 2, 3]) == int(np.argmax(logits))
    assert Sampler(GenerationConfig()).sample(logits.astype(np.float64)) == int(np.argmax(logits))


@pytest.mark.parametrize("seed", range(5))
def test_top_k_1_is_greedy(seed):
    logits = _logits(seed)
    assert _draws(GenerationConfig(temperature=1.5, top_k=1, seed=seed), logits, 5) == [
        int(np.argmax(logits))] * 5


def test_repetition_penalty_rule():
    logits = np.array([2.0, -1.0, 0.5, -3.0, 0.0], dtype=np.float32)
    penalized = apply_repetition_penalty(logits.copy(), [0, 1, 1, 4], 2.0)
    np.testing.assert_array_equal(penalized, [1.0, -2.0, 0.5, -3.0, 0.0])


def test_repetition_penalty_changes_the_greedy_choice_without_touching_the_input():
    logits = np.array([2.0, 1.9, -1.0, -1.1], dtype=np.float32)
    original = logits.copy()
    sampler = Sampler(GenerationConfig(repetition_penalty=1.2))
    assert sampler.sample(logits, [0]) == 1  # 2.0 / 1.2 < 1.9
    negative = np.array([-1.0, -1.1], dtype=np.float32)
    assert sampler.sample(negative, [0]) == 1  # -1.0 * 1.2 < -1.1
    np.testing.assert_array_equal(logits, original)


# --- random sampling ------------------------------------------------------------------------------------

def test_seeded_sampling_is_reproducible_and_seeds_differ():
    logits = _logits(7)
    config = GenerationConfig(temperature=1.0, seed=1234)
    first = _draws(config, logits, 40)
    assert first == _draws(config, logits, 40)
    assert first != _draws(dataclasses.replace(config, seed=4321), logits, 40)
    assert len(set(first)) > 30  # a nearly flat distribution over 151936 tokens


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_frequencies_follow_the_tempered_softmax(temperature):
    logits = np.array([1.0, 0.0, -0.5, 2.0, -4.0], dtype=np.float32)
    draws = _draws(GenerationConfig(temperature=temperature, seed=5), logits, 8000)
    frequencies = np.bincount(draws, minlength=logits.size) / len(draws)
    np.testing.assert_allclose(frequencies, _softmax(logits, temperature), atol=0.02)


def test_frequencies_on_a_large_vocabulary():
    # The draw searches block sums first: put the mass in different blocks, at block edges.
    logits = np.full(5000, -np.inf, dtype=np.float32)
    tokens = [0, 1023, 1024, 3071, 4999]
    probs = np.array([0.1, 0.15, 0.2, 0.25, 0.3])
    logits[tokens] = np.log(probs)
    for config in (GenerationConfig(temperature=1.0, seed=8),
                   GenerationConfig(temperature=1.0, top_p=0.999, seed=8)):
        draws = np.array(_draws(config, logits, 8000))
        frequencies = np.array([(draws == token).mean() for token in tokens])
        assert frequencies.sum() == 1.0
        np.testing.assert_allclose(frequencies, probs, atol=0.02)


@pytest.mark.parametrize(("top_p", "expected"), [
    (0.49, {1}), (0.51, {1, 3}), (0.79, {1, 3}), (0.81, {1, 3, 2}), (0.96, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_reaching_the_mass(top_p, expected):
    logits = np.log(np.array([0.05, 0.5, 0.15, 0.3], dtype=np.float32))
    draws = _draws(GenerationConfig(temperature=1.0, top_p=top_p, seed=3), logits, 3000)
    assert set(draws) == expected


def test_top_p_renormalizes_over_the_kept_set():
    logits = np.log(np.array([0.05, 0.5, 0.15, 0.3], dtype=np.float32))
    draws = _draws(GenerationConfig(temperature=1.0, top_p=0.7, seed=3), logits, 4000)
    assert abs(draws.count(1) / len(draws) - 0.5 / 0.8) < 0.03


def test_min_p_keeps_tokens_near_the_best():
    logits = np.log(np.array([0.4, 0.05, 0.3, 0.25], dtype=np.float32))
    draws = _draws(GenerationConfig(temperature=1.0, min_p=0.5, seed=3), logits, 3000)
    assert set(draws) == {0, 2, 3}


def test_masked_tokens_are_never_drawn():
    logits = np.full(VOCAB, -np.inf, dtype=np.float32)
    allowed = [5, 77777, VOCAB - 1]
    logits[allowed] = [0.0, 1.0, -1.0]
    for config in (GenerationConfig(temperature=1.0, seed=0),
                   GenerationConfig(temperature=0.7, top_p=0.99, min_p=0.01, seed=1),
                   GenerationConfig(temperature=1.0, top_k=50, seed=2)):
        assert set(_draws(config, logits, 300)) <= set(allowed)


def test_all_filters_together_on_a_full_vocabulary():
    logits = _logits(11)
    config = GenerationConfig(temperature=0.7, top_k=40, top_p=0.9, min_p=0.05,
                              repetition_penalty=1.1, seed=9)
    top40 = set(np.argsort(logits)[-40:].tolist())
    sampler = Sampler(config)
    history: list[int] = []
    for _ in range(50):
        history.append(sampler.sample(logits, history))
    assert set(history) <= top40


_small_logits = st.lists(st.floats(-8.0, 8.0, allow_nan=False), min_size=2, max_size=40).map(
    lambda values: np.array(values, dtype=np.float32))


def _nucleus(probs: np.ndarray, top_p: float) -> set[int]:
    """Reference top-p set by a full sort, with a little slack at the boundary for rounding."""
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    count = int(np.searchsorted(cumulative, top_p - 1e-6)) + 1
    boundary = probs[order[min(count, probs.size) - 1]]
    return set(order[:count].tolist()) | set(np.flatnonzero(probs >= boundary * (1 - 1e-5)).tolist())


@settings(max_examples=150, deadline=None)
@given(logits=_small_logits, top_p=st.floats(0.05, 0.999), temperature=st.floats(0.2, 3.0),
       seed=st.integers(0, 2**32 - 1))
def test_top_p_support_property(logits, top_p, temperature, seed):
    draws = _draws(GenerationConfig(temperature=temperature, top_p=top_p, seed=seed), logits, 30)
    assert set(draws) <= _nucleus(_softmax(logits, temperature), top_p)


@settings(max_examples=150, deadline=None)
@given(logits=_small_logits, min_p=st.floats(0.01, 1.0), temperature=st.floats(0.2, 3.0),
       seed=st.integers(0, 2**32 - 1))
def test_min_p_support_property(logits, min_p, temperature, seed):
    draws = _draws(GenerationConfig(temperature=temperature, min_p=min_p, seed=seed), logits, 30)
    probs = _softmax(logits, temperature)
    assert all(probs[token] >= min_p * probs.max() * (1 - 1e-5) for token in draws)


@settings(max_examples=100, deadline=None)
@given(logits=_small_logits, top_k=st.integers(1, 10), seed=st.integers(0, 2**32 - 1))
def test_top_k_support_property(logits, top_k, seed):
    draws = _draws(GenerationConfig(temperature=1.0, top_k=top_k, seed=seed), logits, 30)
    kth_best = np.sort(logits)[::-1][min(top_k, logits.size) - 1]
    assert all(logits[token] >= kth_best for token in draws)


@pytest.mark.parametrize(("logits", "message"), [
    (np.zeros((2, 3), dtype=np.float32), "1-D"),
    (np.zeros(0, dtype=np.float32), "1-D"),
    (np.arange(4), "floating point"),
    (np.array([0.0, np.nan], dtype=np.float32), "finite"),
    (np.array([-np.inf, -np.inf], dtype=np.float32), "finite"),
])
def test_sampler_rejects_bad_logits(logits, message):
    with pytest.raises(ValueError, match=message):
        Sampler(GenerationConfig(temperature=1.0)).sample(logits, [])


def test_sampler_rejects_previous_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="previous token ids"):
        Sampler(GenerationConfig(repetition_penalty=1.3)).sample(_logits(0, 10), [3, 10])


# --- stop strings ---------------------------------------------------------------------------------------

def _run(matcher: StopStringMatcher, pieces: list[str]) -> list[str]:
    return [matcher.feed(piece) for piece in pieces]


def test_without_stop_strings_text_passes_through():
    matcher = StopStringMatcher(())
    assert _run(matcher, ["a", "bc", ""]) == ["a", "bc", ""]
    assert matcher.flush() == "" and not matcher.stopped


def test_stop_string_inside_one_piece_is_cut_exactly():
    matcher = StopStringMatcher(["STOP"])
    assert matcher.feed("Hello STOP world") == "Hello "
    assert matcher.stopped and matcher.matched == "STOP"
    assert matcher.feed("more") == "" and matcher.flush() == ""


def test_stop_string_split_across_pieces():
    matcher = StopStringMatcher(["STOP"])
    assert _run(matcher, ["Hel", "lo S", "T", "OP tail"]) == ["Hel", "lo ", "", ""]
    assert matcher.stopped and matcher.matched == "STOP"


def test_partial_prefix_that_diverges_is_released():
    matcher = StopStringMatcher(["STOP"])
    assert _run(matcher, ["a ST", "OX", " S"]) == ["a ", "STOX", " "]
    assert not matcher.stopped
    assert matcher.flush() == "S"


def test_overlapping_prefix_is_found():
    matcher = StopStringMatcher(["aab"])
    assert "".join(_run(matcher, ["a", "a", "a", "b", "c"])) == "a"
    assert matcher.matched == "aab"


def test_first_completed_stop_string_wins():
    matcher = StopStringMatcher(["</s>", "\n\n"])
    assert "".join(_run(matcher, ["one\n", "\ntwo</s>"])) == "one"
    assert matcher.matched == "\n\n"
    # Two stop strings completed by the same piece: the one that starts first cuts.
    matcher = StopStringMatcher(["b", "abc"])
    assert matcher.feed("xabc") == "x" and matcher.matched == "abc"


def test_multibyte_text_and_stop_strings():
    matcher = StopStringMatcher(["。結束"])
    assert "".join(_run(matcher, ["你好", "。", "結", "束了"])) == "你好"


def test_stop_string_matcher_rejects_empty_stop_strings():
    with pytest.raises(GenerationConfigError):
        StopStringMatcher(["ok", ""])


def _reference_cut(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    """Text kept when generation stops after the first piece that completes a stop string."""
    text = ""
    for piece in pieces:
        text += piece
        found = [text.find(stop) for stop in stops if stop in text]
        if found:
            return text[:min(found)], True
    return text, False


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.text(alphabet="ab\n", max_size=4), max_size=10),
       stops=st.lists(st.text(alphabet="ab\n", min_size=1, max_size=4), min_size=1, max_size=3))
def test_streamed_stop_strings_equal_the_reference(pieces, stops):
    matcher = StopStringMatcher(stops)
    emitted = ""
    for piece in pieces:
        emitted += matcher.feed(piece)
        assert not any(stop in emitted for stop in stops)
        assert "".join(pieces).startswith(emitted)
    expected, stopped = _reference_cut(pieces, stops)
    assert matcher.stopped == stopped
    assert emitted + matcher.flush() == expected
