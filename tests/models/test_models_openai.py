"""OpenAIModel through the real openai SDK against our server on 127.0.0.1 (tiny models)."""

from __future__ import annotations

import socket
from typing import Literal

import pytest
from PIL import Image
from pydantic import BaseModel, Field

from videoespresso import load_model
from videoespresso.errors import ConfigError, EndpointError
from videoespresso.models import ChatModel, VisionLanguageModel, system, user
from videoespresso.models.cache import CachedModel, ResponseCache
from videoespresso.models.openai_backend import BatchEndpointError, OpenAIModel
from videoespresso.schema import GenerationSettings
from videoespresso.serve.openai_server import start_server

SHORT = GenerationSettings(max_new_tokens=8)


class Caption(BaseModel):
    subject: Literal["person", "animal", "object"]
    count: int = Field(ge=0, le=9)


@pytest.fixture(scope="module")
def llm_server(tiny_llm):
    with start_server(tiny_llm, name="tiny-chat") as handle:
        yield handle


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm):
    with start_server(tiny_vlm, name="tiny-vlm") as handle:
        yield handle


def _client(handle, **options) -> OpenAIModel:
    return load_model(f"openai:{handle.name}@{handle.base_url}", **options)


def _image(color, size=(56, 56)) -> Image.Image:
    return Image.new("RGB", size, color)


def test_text_batch_through_the_sdk(llm_server, tiny_llm):
    client = _client(llm_server)
    assert isinstance(client, OpenAIModel) and isinstance(client, ChatModel)
    conversations = [
        [system("Be brief."), user("What happens first?")],
        [user("Name the object.")],
        [user("Describe the scene.")],
    ]
    out = client.generate(conversations, SHORT)
    assert len(out) == 3
    for gen in out:
        assert isinstance(gen.text, str)
        assert gen.model == client.spec
        assert gen.settings == SHORT
        assert gen.prompt_tokens and gen.prompt_tokens > 0
        assert 1 <= gen.completion_tokens <= 8
        assert gen.parsed is None and gen.error is None and not gen.cached
    # One greedy request is answered exactly as the local backend answers it.
    [direct] = tiny_llm.generate([conversations[1]], SHORT)
    [served] = client.generate([conversations[1]], SHORT)
    assert served.text == direct.text
    assert served.prompt_tokens == direct.prompt_tokens


def test_images_in_a_batch_of_conversations(vlm_server):
    client = _client(vlm_server)
    assert isinstance(client, VisionLanguageModel)
    red, blue = _image((220, 30, 30)), _image((30, 30, 220))
    conversations = [
        [user("What changes between the frames?", [red, blue])],
        [user("What changes between the frames?", [red])],
        [user("What changes between the frames?", [blue.convert("RGBA"), red])],
    ]
    out = client.generate(conversations, SHORT)
    assert len(out) == 3
    assert all(1 <= g.completion_tokens <= 8 for g in out)
    # Each image arrived: two images cost more prompt tokens than one.
    assert out[0].prompt_tokens > out[1].prompt_tokens
    assert out[0].prompt_tokens == out[2].prompt_tokens
    png = _client(vlm_server, image_format="png").generate(conversations[:1], SHORT)
    assert png[0].prompt_tokens == out[0].prompt_tokens


def test_json_schema_reply_validates(llm_server, vlm_server):
    settings = GenerationSettings(max_new_tokens=48)
    out = _client(llm_server).generate(
        [[user("Who is in the video?")], [user("How many?")]], settings, schema=Caption
    )
    for gen in out:
        assert gen.error is None, gen.text
        assert isinstance(gen.parsed, Caption)
    as_dict = Caption.model_json_schema()
    [image_reply] = _client(vlm_server).generate(
        [[user("Who is shown?", [_image((0, 200, 0))])]], settings, schema=as_dict
    )
    assert image_reply.error is None, image_reply.text
    assert isinstance(image_reply.parsed, dict)
    assert Caption.model_validate(image_reply.parsed)


def test_reply_cut_short_keeps_text_and_records_the_error(llm_server):
    [gen] = _client(llm_server).generate(
        [[user("Who?")]], GenerationSettings(max_new_tokens=3), schema=Caption
    )
    assert gen.parsed is None
    assert gen.completion_tokens == 3 and gen.text.startswith("{")
    assert gen.error


def test_seeded_sampling_is_reproducible_and_stop_is_sent(llm_server):
    client = _client(llm_server)
    sampled = GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=11)
    first = client.generate([[user("go")]], sampled)
    second = client.generate([[user("go")]], sampled)
    assert first[0].text == second[0].text
    [stopped] = client.generate([[user("go")]], GenerationSettings(max_new_tokens=8, stop=["a", "e", " "]))
    assert not any(s in stopped.text for s in ("a", "e", " "))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_is_an_endpoint_error():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = OpenAIModel("m", base_url=url, spec=f"openai:m@{url}", max_retries=0, timeout=5)
    with pytest.raises(EndpointError) as info:
        client.generate([[user("hi")]])
    message = str(info.value)
    assert url in message and "Connection refused" in message
    with pytest.raises(BatchEndpointError) as batch:
        client.generate([[user("a")], [user("b")], [user("c")]])
    assert url in str(batch.value)
    assert batch.value.completed == [None, None, None]


def test_silent_endpoint_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepts connections (kernel backlog) and never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        client = OpenAIModel("m", base_url=url, spec=f"openai:m@{url}", max_retries=0, timeout=0.5)
        with pytest.raises(EndpointError) as info:
            client.generate([[user("hi")]])
    assert url in str(info.value) and "timed out" in str(info.value)


def test_http_error_names_the_endpoint_and_the_reason(llm_server):
    client = OpenAIModel("no-such-model", base_url=llm_server.base_url, spec="openai:x", max_retries=0)
    with pytest.raises(EndpointError) as info:
        client.generate([[user("hi")]])
    message = str(info.value)
    assert llm_server.base_url in message
    assert "HTTP 404" in message and "tiny-chat" in message


def test_finished_replies_of_a_failing_batch_are_cached(llm_server, tmp_path):
    cached = CachedModel(_client(llm_server, max_retries=0), ResponseCache(tmp_path / "c.sqlite"))
    good = [[user("one")], [user("two")]]
    bad = [user("text-only model, but an image", [_image((1, 2, 3))])]
    with pytest.raises(EndpointError, match="HTTP 400.*text-only"):
        cached.generate([good[0], bad, good[1]], SHORT)
    again = cached.generate(good, SHORT)
    assert [g.cached for g in again] == [True, True]


def test_api_key_never_reaches_records_or_the_cache(llm_server, tmp_path, monkeypatch):
    secret = "sk-test-5ecret-do-not-store-4242"
    monkeypatch.setenv("VE_TEST_KEY", secret)
    path = tmp_path / "cache.sqlite"
    client = _client(llm_server, api_key_env="VE_TEST_KEY")
    cached = CachedModel(client, ResponseCache(path))
    out = cached.generate([[user("hi")], [user("ho")]], SHORT)
    out += cached.generate([[user("hi")]], SHORT)
    assert out[-1].cached
    assert secret not in repr(client) and secret not in repr(cached)
    assert secret not in str(vars(client).get("spec")) and "VE_TEST_KEY" not in client.spec
    for gen in out:
        assert secret not in gen.model_dump_json()
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes(), file


def test_missing_key_for_the_default_endpoint_and_bad_options(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(EndpointError, match="OPENAI_API_KEY"):
        load_model("openai:gpt-4o")
    with pytest.raises(ConfigError, match="device"):
        load_model("openai:m@http://127.0.0.1:9/v1", device="cuda")
    with pytest.raises(ConfigError, match="image_format"):
        load_model("openai:m@http://127.0.0.1:9/v1", image_format="gif")


def test_a_video_turn_is_sent_as_its_frames(vlm_server):
    from videoespresso.models import VideoClip, user_video

    client = _client(vlm_server)
    frames = [_image((220, 30, 30)), _image((30, 30, 220))]
    clip = VideoClip(frames=frames, indices=[0, 25], seconds=[0.0, 1.0], fps=25.0, total_frames=26)
    parts = client._messages([user_video("What changes?", clip)])[0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    as_video, as_images = client.generate([[user_video("What changes?", clip)], [user("What changes?", frames)]], SHORT)
    assert as_video.prompt_tokens == as_images.prompt_tokens


def test_repetition_penalty_travels_in_the_body_and_is_applied(llm_server, tiny_llm):
    """Not an OpenAI parameter: the client sends it as an extra body field (as vLLM takes it) and
    our server decodes with it, so the reply equals the local model's under the same setting."""
    settings = GenerationSettings(max_new_tokens=12, repetition_penalty=3.0)
    [remote] = _client(llm_server).generate([[user("say it again and again")]], settings)
    [local] = tiny_llm.generate([[user("say it again and again")]], settings)
    [plain] = tiny_llm.generate([[user("say it again and again")]], GenerationSettings(max_new_tokens=12))
    assert remote.text == local.text
    assert local.text != plain.text
