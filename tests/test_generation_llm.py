"""The chat-completions client against a real local HTTP server: retries, back-off, auth, parallelism, order."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_llm import FakeLLM, answer_for

from tasks.generation.batch import generate_tables
from tasks.generation.config import ModelProvider
from tasks.generation.errors import ConfigError
from tasks.generation.llm import ChatCompletionsClient, LLMError, RetryPolicy, resolve_api_key
from tasks.generation.plan import get_plan
from tasks.generation.source import from_config
from tasks.retry_policy import parse_retry_after

FAST = RetryPolicy(max_retries=3, backoff_seconds=0.01, max_backoff_seconds=0.05)


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _body(text: str, seed: int = 1) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "seed": seed}


def test_429_with_retry_after_and_500_are_retried(llm: FakeLLM) -> None:
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.fail_next(429, retry_after=0.2)
    llm.fail_next(500)
    started = time.monotonic()
    answer = client.complete(_body("hi"))
    assert time.monotonic() - started >= 0.2  # Retry-After honoured
    assert answer == answer_for("m", [{"role": "user", "content": "hi"}], 1)
    assert [r.status for r in llm.chat_requests] == [429, 500, 200]


def test_4xx_fails_at_once_with_the_server_message(llm: FakeLLM) -> None:
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.fail_next(400, message="model 'm' does not exist")
    with pytest.raises(LLMError, match=r"HTTP 400.*does not exist"):
        client.complete(_body("hi"))
    assert len(llm.chat_requests) == 1


def test_retries_exhausted(llm: FakeLLM) -> None:
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.fail_next(503, count=10)
    with pytest.raises(LLMError, match=r"gave up after 4 attempts.*HTTP 503"):
        client.complete(_body("hi"))


def test_timeouts_and_connection_errors_are_retried() -> None:
    with FakeLLM(latency=0.5) as slow:
        client = ChatCompletionsClient(slow.endpoint, retry=RetryPolicy(1, 0.01, 0.01), timeout=0.1)
        with pytest.raises(LLMError, match="timed out"):
            client.complete(_body("hi"))
    client = ChatCompletionsClient("http://127.0.0.1:9/v1", retry=RetryPolicy(1, 0.01, 0.01))
    with pytest.raises(LLMError, match="connection error"):
        client.complete(_body("hi"))


def test_api_key_is_sent_but_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-test-secret-987"
    with FakeLLM(api_key=key) as server:
        client = ChatCompletionsClient(server.endpoint, api_key=key, retry=FAST)
        server.fail_next(500)
        with caplog.at_level(logging.DEBUG):
            client.complete(_body("hi"))
        assert server.chat_requests[-1].authorization == f"Bearer {key}"
        wrong = ChatCompletionsClient(server.endpoint, api_key="sk-wrong", retry=FAST)
        with pytest.raises(LLMError) as info:
            wrong.complete(_body("hi"))
    assert key not in caplog.text and "sk-wrong" not in str(info.value)


def test_parallel_requests_are_bounded_and_answers_keep_input_order() -> None:
    with FakeLLM(latency=0.05) as server:
        client = ChatCompletionsClient(server.endpoint, max_parallel_requests=3, retry=FAST)
        server.fail_next(429, retry_after=0.01, count=2)
        bodies = [_body(f"q{i}", seed=i) for i in range(24)]
        answers = client.complete_many(bodies)
        assert answers == [answer_for("m", b["messages"], b["seed"]) for b in bodies]
        assert server.max_in_flight <= 3


def test_retry_after_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 1  # type: ignore[operator]
    assert parse_retry_after("-1") is None and parse_retry_after("nan") is None


def test_the_hubs_rate_limit_wait_reads_both_retry_after_forms() -> None:
    # One parser for the Hub's 429s and the LLM endpoints': RFC 9110 allows an HTTP date as well as seconds.
    import email.utils
    import time

    from tasks.retry_policy import rate_limit_wait

    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= rate_limit_wait(429, {"Retry-After": later}) <= 30  # type: ignore[operator]
    assert rate_limit_wait(429, {"retry-after": "7"}) == 7.0
    assert rate_limit_wait(503, {"Retry-After": "7"}) is None


def test_api_key_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "from-env")
    assert resolve_api_key(ModelProvider(name="p", endpoint="http://h", api_key_env="FAKE_LLM_KEY")) == "from-env"
    assert resolve_api_key(ModelProvider(name="p", endpoint="http://h", api_key="FAKE_LLM_KEY")) == "from-env"  # type: ignore[arg-type]
    assert resolve_api_key(ModelProvider(name="p", endpoint="http://h")) is None
    monkeypatch.delenv("FAKE_LLM_KEY")
    with pytest.raises(ConfigError, match="FAKE_LLM_KEY is not set"):
        resolve_api_key(ModelProvider(name="p", endpoint="http://h", api_key_env="FAKE_LLM_KEY"))


def test_api_key_from_a_prefect_secret_block(prefect_api: None) -> None:
    from prefect.blocks.system import Secret

    Secret(value="sk-from-block").save("fake-llm-key", overwrite=True)
    provider = ModelProvider(name="p", endpoint="http://h", api_key_secret="fake-llm-key")
    assert resolve_api_key(provider) == "sk-from-block"
    assert "sk-from-block" not in provider.model_dump_json()
    with pytest.raises(ConfigError, match="Secret block 'missing-key' not found"):
        resolve_api_key(ModelProvider(name="p", endpoint="http://h", api_key_secret="missing-key"))


def _one_llm_column(endpoint: str, **provider: Any) -> dict[str, Any]:
    return {
        "columns": [{"name": "q", "column_type": "llm-text", "prompt": "hi", "model_alias": "m"}],
        "model_configs": [{"alias": "m", "model": "x", "provider": "p"}],
        "model_providers": [{"name": "p", "endpoint": endpoint, **provider}],
    }


def test_configs_differing_only_in_an_auth_header_each_send_their_own(llm: FakeLLM) -> None:
    # The header is redacted in config_hash; the process-wide plan cache must still tell the configs apart.
    for token in ("ALICE-TOKEN", "BOB-TOKEN"):
        config = from_config(_one_llm_column(llm.endpoint, extra_headers={"Authorization": f"Bearer {token}"}))
        generate_tables(get_plan(config), seed=0, batch_index=0, num_rows=1)
        assert llm.chat_requests[-1].authorization == f"Bearer {token}"


def test_a_rotated_api_key_is_used_by_the_next_batch(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    config = from_config(_one_llm_column(llm.endpoint, api_key_env="ROTATED_FAKE_LLM_KEY"))
    for key in ("sk-old", "sk-new"):
        monkeypatch.setenv("ROTATED_FAKE_LLM_KEY", key)
        generate_tables(get_plan(config), seed=0, batch_index=0, num_rows=1)
        assert llm.chat_requests[-1].authorization == f"Bearer {key}"
