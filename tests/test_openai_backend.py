"""The openai backend's request/response handling against a stub completions server on loopback.

The stub only replays the response shape of an OpenAI-compatible server; the real-server tests
(vLLM, llama.cpp) belong to the vLLM issue.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from icm_engine.backends.base import BackendError
from icm_engine.backends.openai import LOG_FLOOR, OpenAIBackend


class Stub(BaseHTTPRequestHandler):
    fail_first = 0
    no_logprobs = False
    # vLLM 0.32+: /tokenize, and exact log-probabilities for `logprob_token_ids`.
    tokenizer = False
    honours_token_ids = False
    requests: ClassVar[list] = []
    tokenized: ClassVar[list] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tokenize":
            Stub.tokenized.append(body)
            if not Stub.tokenizer:
                return self._send(404, {"detail": "Not Found"})
            return self._send(200, {"tokens": [{" True": 11, " False": 12}[body["prompt"]]]})
        Stub.requests.append(body)
        if Stub.fail_first > 0:
            Stub.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        choices = []
        for i, prompt in enumerate(body["prompt"]):
            if body.get("echo"):
                choices.append({"index": i, "logprobs": {"text_offset": [0, 4, 9],
                                                         "token_logprobs": [None, -1.0, -2.5]}})
            elif Stub.no_logprobs:
                choices.append({"index": i, "text": " True"})
            elif Stub.honours_token_ids and body.get("logprob_token_ids"):
                assert body["logprob_token_ids"] == [11, 12] and body["logprobs"] == 2
                top = {"True": math.log(0.1), " True": math.log(0.6), " False": math.log(1e-7)}
                choices.append({"index": i, "logprobs": {"top_logprobs": [top]}})
            else:
                top = {" True": math.log(0.6), "True": math.log(0.1), " False": math.log(0.2)}
                if "nofalse" in prompt:
                    top.pop(" False")
                choices.append({"index": i, "logprobs": {"top_logprobs": [top]}})
        self._send(200, {"choices": choices, "usage": {"prompt_tokens": 7 * len(body["prompt"])}})


@pytest.fixture()
def server():
    Stub.requests, Stub.tokenized, Stub.fail_first, Stub.no_logprobs = [], [], 0, False
    Stub.tokenizer = Stub.honours_token_ids = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_label_logprobs_pool_variants_and_floor(server):
    backend = OpenAIBackend("m", base_url=server, batch_size=2)
    out = backend.label_logprobs(["a", "b", "nofalse"], [" True", " False"])
    np.testing.assert_allclose(out[0], [math.log(0.7), math.log(0.2)])
    assert out[2, 1] == LOG_FLOOR
    assert backend.stats.model_calls == 2 and backend.stats.prompts == 3 and backend.stats.prompt_tokens == 21
    assert all(r["max_tokens"] == 1 and r["logprobs"] == 20 for r in Stub.requests)


def test_exact_label_logprobs_where_the_server_offers_them(server):
    Stub.tokenizer = Stub.honours_token_ids = True
    backend = OpenAIBackend("m", base_url=server, batch_size=2)
    out = backend.label_logprobs(["a", "b", "nofalse"], [" True", " False"])
    # The label tokens' own values: no pooling with "True", no top-k floor.
    np.testing.assert_allclose(out, [[math.log(0.6), math.log(1e-7)]] * 3)
    assert backend.describe()["label_logprobs"] == "exact"
    assert [t["prompt"] for t in Stub.tokenized] == [" True", " False"]  # tokenized once each
    backend.label_logprobs(["c"], [" True", " False"])
    assert len(Stub.tokenized) == 2


def test_a_server_that_ignores_token_ids_falls_back_to_top_k(server):
    Stub.tokenizer = True  # tokenizes, but answers with its top-k as before
    backend = OpenAIBackend("m", base_url=server)
    out = backend.label_logprobs(["a", "nofalse"], [" True", " False"])
    np.testing.assert_allclose(out[0], [math.log(0.7), math.log(0.2)])
    assert out[1, 1] == LOG_FLOOR
    assert backend.describe()["label_logprobs"] == "top-20"
    assert "logprob_token_ids" not in Stub.requests[-1]


def test_continuation_reads_prompt_logprobs_after_the_prefix(server):
    backend = OpenAIBackend("m", base_url=server)
    out = backend.continuation_logprobs(["abcd"], [" efgh"])
    assert out[0] == pytest.approx(-3.5)  # tokens at offsets 4 and 9
    assert Stub.requests[0]["echo"] is True and Stub.requests[0]["max_tokens"] == 0


def test_retries_then_succeeds(server):
    Stub.fail_first = 2
    backend = OpenAIBackend("m", base_url=server, retries=3)
    assert backend.label_logprobs(["a"], [" True", " False"]).shape == (1, 2)
    assert len(Stub.requests) == 3


def test_clear_errors(server):
    Stub.no_logprobs = True
    with pytest.raises(BackendError, match="no logprobs"):
        OpenAIBackend("m", base_url=server).label_logprobs(["a"], [" True", " False"])
    with pytest.raises(BackendError, match="failed after 2 tries"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9", retries=1, timeout_s=2).label_logprobs(["a"], [" True"])
