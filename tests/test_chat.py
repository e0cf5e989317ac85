"""Chat rendering: the npz prompts, GGUF template vs built-in rules, message validation."""
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qvl_local.chat import (
    IMAGE_PLACEHOLDER,
    VIDEO_PLACEHOLDER,
    ChatFormatError,
    RenderedChat,
    render_chat,
)
from qvl_local.errors import QvlError


@pytest.fixture(scope="module")
def gguf_template(fixtures: Path) -> str:
    reader = gguf.GGUFReader(fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf")
    field = reader.fields["tokenizer.chat_template"]
    return field.parts[field.data[0]].tobytes().decode()


@pytest.fixture(scope="module")
def processor_template(fixtures: Path) -> str:
    path = fixtures / "tokenizer" / "qwen2vl" / "chat_template.json"
    return json.loads(path.read_text())["chat_template"]


def _case_messages(ref: np.lib.npyio.NpzFile) -> tuple[list[dict], list, list]:
    """The user message of a reference case (media before the text) and its media."""
    images = [str(name) for name in ref["image_files"]] if "image_files" in ref else []
    videos = [[str(name) for name in ref["video_files"]]] if "video_files" in ref else []
    content = ([{"type": "image", "image": image} for image in images]
               + [{"type": "video", "video": video} for video in videos]
               + [{"type": "text", "text": str(ref["user_text"])}])
    return [{"role": "user", "content": content}], images, videos


def test_reference_prompts_are_reproduced(fixtures, gguf_template):
    paths = sorted((fixtures / "ref" / "qwen2vl-tiny").glob("*/*.npz"))
    assert paths
    for path in paths:
        ref = np.load(path)
        messages, images, videos = _case_messages(ref)
        for template in (None, gguf_template):
            rendered = render_chat(messages, template=template)
            assert rendered == RenderedChat(str(ref["prompt"]), images, videos), (path, template)


def test_plain_string_content_renders_like_a_text_part(fixtures):
    ref = np.load(fixtures / "ref" / "qwen2vl-tiny" / "q8_0" / "a_text.npz")
    rendered = render_chat([{"role": "user", "content": str(ref["user_text"])}])
    assert rendered.prompt == str(ref["prompt"])
    assert rendered.images == [] and rendered.videos == []


def test_multi_turn_with_system_prompt(gguf_template, processor_template):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image", "image": "cat.png"},
                                     {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": [{"type": "text", "text": "And this?"},
                                     {"type": "video", "video": ["f0.png", "f1.png"]}]},
    ]
    expected = ("<|im_start|>system\nBe brief.<|im_end|>\n"
                f"<|im_start|>user\n{IMAGE_PLACEHOLDER}What is it?<|im_end|>\n"
                "<|im_start|>assistant\nA cat.<|im_end|>\n"
                f"<|im_start|>user\nAnd this?{VIDEO_PLACEHOLDER}<|im_end|>\n"
                "<|im_start|>assistant\n")
    for template in (None, gguf_template, processor_template):
        rendered = render_chat(messages, template=template)
        assert rendered.prompt == expected
        assert rendered.images == ["cat.png"] and rendered.videos == [["f0.png", "f1.png"]]


def test_without_generation_prompt(gguf_template):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    expected = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n")
    for template in (None, gguf_template):
        assert render_chat(messages, template=template, add_generation_prompt=False).prompt == expected


def test_openai_url_parts_and_media_order_across_messages(gguf_template):
    pixels = object()  # any media object is passed through untouched
    messages = [
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "video_url", "video_url": "file:///clip.mp4"},
            {"type": "text", "text": "Compare."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": "data:image/png;base64,AA=="},
                                     {"type": "image", "image": pixels},
                                     {"type": "video_url", "video_url": {"url": "v2.mp4"}}]},
    ]
    for template in (None, gguf_template):
        rendered = render_chat(messages, template=template)
        assert rendered.images == ["https://example.com/a.png", "data:image/png;base64,AA==", pixels]
        assert rendered.videos == ["file:///clip.mp4", "v2.mp4"]
        assert rendered.prompt.count(IMAGE_PLACEHOLDER) == 3
        assert rendered.prompt.count(VIDEO_PLACEHOLDER) == 2
        first_turn = f"<|im_start|>user\n{IMAGE_PLACEHOLDER}{VIDEO_PLACEHOLDER}Compare.<|im_end|>"
        assert first_turn in rendered.prompt


_part = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=20)),
    st.just({"type": "image", "image": "img.png"}),
    st.just({"type": "video", "video": "clip.mp4"}),
)
_message = st.builds(lambda role, content: {"role": role, "content": content},
                     st.sampled_from(["system", "user", "assistant"]),
                     st.one_of(st.text(max_size=20), st.lists(_part, max_size=4)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(_message, min_size=1, max_size=5), add_generation_prompt=st.booleans())
def test_builtin_rules_equal_the_gguf_template(gguf_template, messages, add_generation_prompt):
    builtin = render_chat(messages, add_generation_prompt=add_generation_prompt)
    templated = render_chat(messages, template=gguf_template, add_generation_prompt=add_generation_prompt)
    assert builtin == templated


@pytest.mark.parametrize(("messages", "message"), [
    ([], "must not be empty"),
    ("hello", "must be a list"),
    (["hello"], r"messages\[0\] must be a mapping"),
    ([{"role": "robot", "content": "hi"}], "role 'robot'"),
    ([{"content": "hi"}], "role None"),
    ([{"role": "user"}], "has no 'content'"),
    ([{"role": "user", "content": 3}], "must be a string or a list"),
    ([{"role": "user", "content": [{"type": "audio", "audio": "a.wav"}]}], "type 'audio'"),
    ([{"role": "user", "content": [{"text": "no type"}]}], "type None"),
    ([{"role": "user", "content": [{"type": "text"}]}], "has no 'text' value"),
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "'text' must be a string"),
    ([{"role": "user", "content": [{"type": "image"}]}], "has no 'image' value"),
    ([{"role": "user", "content": [{"type": "video", "video": None}]}], "has no 'video' value"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"uri": "x"}}]}], "needs a URL"),
    ([{"role": "user", "content": ["just a string"]}], r"content\[0\] must be a mapping"),
])
def test_malformed_messages_raise_a_clear_error(messages, message):
    with pytest.raises(ChatFormatError, match=message) as caught:
        render_chat(messages)
    assert isinstance(caught.value, QvlError) and isinstance(caught.value, ValueError)


def test_template_failures_become_chat_format_errors():
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(ChatFormatError, match="no tools here"):
        render_chat(messages, template="{{ raise_exception('no tools here') }}")
    with pytest.raises(ChatFormatError, match="chat template failed"):
        render_chat(messages, template="{% for m in messages %}")
    with pytest.raises(ChatFormatError, match="chat template failed"):  # the sandbox blocks this
        render_chat(messages, template="{{ messages.__class__.__mro__ }}")


def test_tojson_keeps_text_unescaped():
    messages = [{"role": "user", "content": "<b>&'é"}]
    prompt = render_chat(messages, template="{{ messages[0]['content'] | tojson }}").prompt
    assert prompt == '"<b>&\'é"'
