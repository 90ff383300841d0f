"""The chat-completions client against a real local HTTP server: retries, back-off, auth, parallelism, order."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_llm import FakeLLM, answer_for, llm_example_config

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


def test_a_short_retry_after_does_not_shrink_the_back_off(llm: FakeLLM) -> None:
    # An overloaded server answering 'Retry-After: 0' to every request used to use up all the attempts at once; the
    # provider's back-off (here 0.2 + 0.4 + 0.8 s) is what the config promises to wait out.
    client = ChatCompletionsClient(llm.endpoint, retry=RetryPolicy(max_retries=3, backoff_seconds=0.2))
    llm.outage(0.5, 429, retry_after=0)
    assert client.complete(_body("hi")) == answer_for("m", [{"role": "user", "content": "hi"}], 1)
    llm.outage(0.5, 503, retry_after=0.7)  # a longer Retry-After is still honoured
    started = time.monotonic()
    client.complete(_body("hi"))
    assert time.monotonic() - started >= 0.7


@pytest.mark.parametrize("status", [520, 522, 524, 529])
def test_gateway_and_overload_statuses_are_retried(llm: FakeLLM, status: int) -> None:
    # Cloudflare-fronted endpoints answer 520-524 when the origin is slow or restarting (524: a long generation hit
    # the proxy's timeout), some providers 529 when overloaded: transient, like 502-504.
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.fail_next(status)
    assert client.complete(_body("hi")) == answer_for("m", [{"role": "user", "content": "hi"}], 1)
    llm.fail_next(501)  # Not Implemented is not transient
    with pytest.raises(LLMError, match="HTTP 501"):
        client.complete(_body("hi"))


def test_a_429_for_a_used_up_quota_fails_at_once_and_says_so(llm: FakeLLM) -> None:
    # OpenAI answers 429 'insufficient_quota' when the account is out of credit: waiting cannot fix it, and the
    # 'endpoint overloaded, raise max_retries' advice of a retried-out request would send the user the wrong way.
    llm.fail_next(429, code="insufficient_quota", message="You exceeded your current quota", count=4)
    with pytest.raises(LLMError, match=r"HTTP 429.*exceeded your current quota.*quota is used up") as info:
        ChatCompletionsClient(llm.endpoint, retry=FAST).complete(_body("hi"))
    assert not info.value.exhausted and len(llm.chat_requests) == 1


def test_4xx_fails_at_once_with_the_server_message(llm: FakeLLM) -> None:
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.fail_next(400, message="model 'm' does not exist")
    with pytest.raises(LLMError, match=r"HTTP 400.*does not exist"):
        client.complete(_body("hi"))
    assert len(llm.chat_requests) == 1


def test_the_back_off_doubles_up_to_its_cap_and_sums_what_a_request_waits() -> None:
    policy = RetryPolicy(max_retries=4, backoff_seconds=1.0, max_backoff_seconds=3.0)
    assert [policy.backoff(attempt) for attempt in range(4)] == [1.0, 2.0, 3.0, 3.0]
    assert policy.total_backoff() == 9.0
    assert all(0.8 * 3.0 <= policy.delay(3, None) <= 1.2 * 3.0 for _ in range(20))  # jitter around the back-off
    provider = ModelProvider(
        name="p", endpoint="http://h", max_retries=2, retry_backoff_seconds=0.5, max_backoff_seconds=9
    )
    assert RetryPolicy.for_provider(provider).total_backoff() == 1.5


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
        answers = [answer.content for answer in client.complete_many(bodies)]
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


def test_an_answer_withheld_by_the_content_filter_fails_at_once_and_says_why(llm: FakeLLM) -> None:
    # Asking again gets the same verdict (same prompt, same seed): retries only cost time and money.
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.answer_next(None, finish_reason="content_filter", count=4)
    with pytest.raises(LLMError, match="content filter withheld the answer"):
        client.complete(_body("hi"))
    assert len(llm.chat_requests) == 1


def test_a_malformed_answer_is_retried_and_the_error_shows_what_came_back(llm: FakeLLM) -> None:
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.answer_next(raw=b"\xff\xfe not json")
    assert client.complete(_body("hi")) == answer_for("m", [{"role": "user", "content": "hi"}], 1)
    llm.answer_next(raw=b"<html><body>502 Bad Gateway (proxy)</body></html>", count=4)
    with pytest.raises(LLMError, match=r"not JSON: <html><body>502 Bad Gateway \(proxy\)"):
        client.complete(_body("hi"))


def test_an_answer_cut_before_any_text_fails_at_once_and_names_max_tokens(llm: FakeLLM) -> None:
    llm.answer_next(None, finish_reason="length", count=4)
    with pytest.raises(
        LLMError, match=r"cut at max_tokens before any text.*\. Raise inference_parameters.max_tokens\.$"
    ):
        ChatCompletionsClient(llm.endpoint, retry=FAST).complete(_body("hi"))
    assert len(llm.chat_requests) == 1


def test_content_given_as_text_parts_is_read(llm: FakeLLM) -> None:
    # Some servers (Mistral's reasoning models, among others) answer content as parts, thinking first.
    parts = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "Hallo"},
    ]
    llm.answer_next(parts)
    assert ChatCompletionsClient(llm.endpoint, retry=FAST).complete(_body("hi")) == "Hallo"
    assert len(llm.chat_requests) == 1


def test_dropped_connections_are_retried(llm: FakeLLM) -> None:
    client = ChatCompletionsClient(llm.endpoint, retry=FAST)
    llm.drop_next(2)
    assert client.complete(_body("hi")) == answer_for("m", [{"role": "user", "content": "hi"}], 1)
    assert len(llm.chat_requests) == 3


def test_an_endpoint_without_v1_is_named_as_the_likely_cause_of_a_404(llm: FakeLLM) -> None:
    client = ChatCompletionsClient(llm.endpoint.removesuffix("/v1"), retry=FAST)
    with pytest.raises(LLMError, match=r"HTTP 404.*is the endpoint missing /v1\?"):
        client.complete(_body("hi"))
    llm.fail_next(404, message="The model 'm' does not exist")
    with pytest.raises(LLMError) as info:
        ChatCompletionsClient(llm.endpoint, retry=FAST).complete(_body("hi"))
    assert "/v1?" not in str(info.value)


def test_an_endpoint_with_a_query_keeps_it_after_the_path_and_out_of_messages(llm: FakeLLM) -> None:
    # Azure-style endpoints carry ?api-version=...; some gateways take the key in the query.
    client = ChatCompletionsClient(f"{llm.endpoint}?api-version=2024-10-21&key=qs-secret-4567", retry=FAST)
    assert client.complete(_body("hi")) == answer_for("m", [{"role": "user", "content": "hi"}], 1)
    assert llm.chat_requests[-1].path == "/v1/chat/completions"
    assert llm.chat_requests[-1].query == "api-version=2024-10-21&key=qs-secret-4567"
    llm.fail_next(400, message="bad request")
    with pytest.raises(LLMError) as info:
        client.complete(_body("hi"))
    assert "qs-secret-4567" not in str(info.value) and "api-version=2024-10-21" in str(info.value)


def test_an_api_key_the_server_echoes_is_not_logged_or_raised(caplog: pytest.LogCaptureFixture) -> None:
    # Some gateways quote the refused key in their error; the message reaches logs and the Prefect UI.
    key = "team-key-0123456789abcdef"
    with FakeLLM(api_key=key) as server:
        client = ChatCompletionsClient(server.endpoint, api_key=key, retry=FAST)
        server.fail_next(503, message=f"upstream busy for key {key}")
        server.fail_next(401, message=f"Incorrect API key provided: {key}")
        with caplog.at_level(logging.DEBUG), pytest.raises(LLMError) as info:
            client.complete(_body("hi"))
    assert "HTTP 401" in str(info.value) and "503" in caplog.text
    assert key not in str(info.value) and key not in caplog.text


def test_a_failed_request_stops_the_rest_of_the_batch(llm: FakeLLM) -> None:
    # Answers of a batch that failed are thrown away: the requests not yet sent must not be paid for, even when
    # an earlier row is still waiting to retry.
    slow_retry = RetryPolicy(max_retries=1, backoff_seconds=0.5, max_backoff_seconds=0.5)
    client = ChatCompletionsClient(llm.endpoint, max_parallel_requests=2, retry=slow_retry)
    llm.fail_next(503, prompt="q0")
    llm.fail_next(400, message="prompt too long", prompt="q1")
    with pytest.raises(LLMError, match="prompt too long") as info:
        client.complete_many([_body(f"q{i}", seed=i) for i in range(40)])
    time.sleep(0.7)  # row 0's retry
    assert info.value.row == 1 and len(llm.chat_requests) < 10


def test_a_batch_that_gives_up_names_column_row_and_what_to_do(llm: FakeLLM) -> None:
    config = from_config(_one_llm_column(llm.endpoint, max_retries=1, retry_backoff_seconds=0.01))
    llm.fail_next(503, count=2)
    with pytest.raises(LLMError) as info:
        generate_tables(get_plan(config), seed=0, batch_index=3, num_rows=1)
    message = str(info.value)
    assert "column 'q' (model 'm'), batch 3, row 0" in message and "HTTP 503" in message
    assert "a rerun with the same parameters resumes" in message and "raise max_retries (now 1)" in message
    assert "The retries waited about 0.01 s in all" in message
    llm.fail_next(400, message="context length exceeded")
    with pytest.raises(LLMError, match=r"batch 0, row 0: .*context length exceeded.*fix the config") as info:
        generate_tables(get_plan(config), seed=0, batch_index=0, num_rows=1)
    assert str(info.value).endswith("then rerun.") and info.value.advice.startswith("retrying the same request")


# Each piece of advice a failed batch may give, by a phrase of it.
ADVICE = {
    "quota": "quota is used up",
    "v1": "is the endpoint missing /v1?",
    "content filter": "change the prompt, or the run's seed",
    "max_tokens": "raise inference_parameters.max_tokens",
    "generic": "Retrying the same request cannot help",
    "exhausted": "raise max_retries",
}


@pytest.mark.parametrize(
    ("cause", "fault"),
    [
        ("quota", lambda llm: llm.fail_next(429, code="insufficient_quota", message="You exceeded your quota.")),
        ("v1", None),
        ("content filter", lambda llm: llm.answer_next(None, finish_reason="content_filter")),
        ("max_tokens", lambda llm: llm.answer_next(None, finish_reason="length")),
        ("generic", lambda llm: llm.fail_next(400, message="context length exceeded")),
        ("exhausted", lambda llm: llm.fail_next(503, count=2)),
    ],
)
def test_a_failed_batch_gives_one_piece_of_advice(llm: FakeLLM, cause: str, fault: Any) -> None:
    # The client's advice for a known cause used to be followed by the batch's generic one, which contradicted it
    # ("add credit, then rerun. Retrying the same request cannot help: fix the config...").
    endpoint = llm.endpoint.removesuffix("/v1") if cause == "v1" else llm.endpoint
    config = from_config(_one_llm_column(endpoint, max_retries=1, retry_backoff_seconds=0.01))
    if fault is not None:
        fault(llm)
    with pytest.raises(LLMError) as info:
        generate_tables(get_plan(config), seed=0, batch_index=0, num_rows=1)
    message = str(info.value)
    assert message.startswith("column 'q' (model 'm'), batch 0, row 0: ")
    assert [name for name, phrase in ADVICE.items() if phrase.lower() in message.lower()] == [cause], message
    assert ADVICE[cause].lower() in info.value.advice.lower() and ".." not in message and "?." not in message


def test_answers_cut_at_max_tokens_are_reported(llm: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    raw = _one_llm_column(llm.endpoint)
    raw["model_configs"][0]["inference_parameters"] = {"max_tokens": 4}
    llm.answer_next("Hello, Ad", finish_reason="length")
    with caplog.at_level(logging.WARNING):
        main, _ = generate_tables(get_plan(from_config(raw)), seed=0, batch_index=0, num_rows=2)
    assert "Hello, Ad" in main.column("q").to_pylist()  # kept: a cap is often meant
    assert "column 'q' (model 'm'), batch 0: 1 of 2 answers were cut at max_tokens=4" in caplog.text


def test_retries_and_a_failure_show_in_the_prefect_run_logs(
    prefect_api: None, llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A nightly run stuck on a rate-limited endpoint must say so in the UI, not only in the worker's stderr.
    from prefect.client.orchestration import get_client as prefect_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from flows.generate import generate_dataset

    monkeypatch.setenv("FAKE_LLM_API_KEY", "sk-unused-by-the-fake")
    llm.fail_next(429, retry_after=0.01, count=3)
    state = generate_dataset(
        llm_example_config(llm.endpoint), 4, tmp_path / "out", batch_size=4, return_state=True
    )
    assert state.is_completed()
    APILogWorker.drain_all(timeout=10)
    with prefect_client(sync_client=True) as client:
        flow_run_id = state.state_details.flow_run_id
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    text = "\n".join(log.message for log in logs)
    assert "column 'greeting' (model 'writer'), batch 0: chat completion HTTP 429" in text
    assert "column 'greeting' (model 'writer'), batch 0: 3 requests retried (HTTP 429: 3)" in text


def test_an_interrupted_run_stops_sending_requests(prefect_api: None, tmp_path: Path) -> None:
    # Ctrl-C (or a cancellation's SIGTERM) used to leave the running batches' queued requests to go out, all of them
    # (784 of 800 here), before the process could exit (57 s later).
    import signal

    import yaml
    from reliability_support import child_env, start_child, wait_for

    with FakeLLM(latency=0.1) as server:
        config = tmp_path / "llm.yaml"
        config.write_text(yaml.safe_dump(llm_example_config(server.endpoint, parallel=2)))
        args = [str(config), "--num-records", "400", "--batch-size", "100", "--output", str(tmp_path / "out")]
        child = start_child("flows.generate", args, child_env(FAKE_LLM_API_KEY="sk-interrupt-test"))
        try:
            assert wait_for(lambda: len(server.chat_requests) >= 10 or child.poll() is not None, 120)
            sent = len(server.chat_requests)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert child.returncode != 0 and "interrupted" in stderr
        # Those in flight (2) and what goes out while the signal is handled on a loaded machine (20 requests a
        # second here), not the 784 queued; communicate's timeout bounds the exit (it took 57 s).
        assert len(server.chat_requests) - sent <= 100


@pytest.mark.parametrize(
    "header", ["Ocp-Apim-Subscription-Key", "Cookie", "X-Auth", "Proxy-Authorization", "X-Api-Key"]
)
def test_a_secret_header_the_server_echoes_is_not_logged_or_raised(
    header: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Azure API Management and other gateways take the key in their own header, and some quote the value they
    # refused: the message reaches logs and the Prefect UI.
    value = "hdr-secret-0123456789abcdef"
    with FakeLLM() as server:
        client = ChatCompletionsClient(
            server.endpoint, retry=FAST, extra_headers={header: value, "X-Team": "data"}
        )
        server.fail_next(503, message="upstream busy for", echo_header=header)
        server.fail_next(401, message="refused", echo_header=header)
        with caplog.at_level(logging.DEBUG), pytest.raises(LLMError) as info:
            client.complete(_body("hi"))
    assert "HTTP 401" in str(info.value) and f"{header}: " in str(info.value) and "503" in caplog.text
    assert value not in str(info.value) and value not in caplog.text


def test_one_rule_decides_which_headers_are_secret() -> None:
    # The same headers are hidden in the written config, left out of config_hash, and scrubbed from errors.
    from tasks.redaction import is_secret_header, redact_secrets

    secret = ["Authorization", "X-API-Key", "api-key", "Ocp-Apim-Subscription-Key", "Cookie", "X-Auth", "x-token"]
    kept = ["X-Team", "X-Model-Version", "Content-Type", "Accept"]
    assert all(is_secret_header(h) for h in secret) and not any(is_secret_header(h) for h in kept)
    headers = {h: "some-value-123" for h in secret + kept}
    provider = ModelProvider(name="p", endpoint="http://h/v1", extra_headers=headers)
    dumped = provider.model_dump()["extra_headers"]
    redacted = redact_secrets({"extra_headers": headers})["extra_headers"]
    for hidden in (dumped, redacted):
        assert {h for h, v in hidden.items() if v == "<redacted>"} == set(secret)
