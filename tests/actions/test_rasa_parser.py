"""The action server's parse of a clause (actions/respond.py RasaParser): any Rasa server in turn, the next when one
refuses the connection, with connections kept open between turns."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actions import respond


class ParseServer(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), ParseHandler)
        self.texts, self.connections = [], set()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class ParseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_POST(self):
        assert self.path == "/webhooks/gateway/parse" and self.headers["Authorization"] == "Bearer t"
        text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"]
        self.server.texts.append(text)
        self.server.connections.add(self.client_address)
        body = json.dumps({"text": text, "intent": {"name": "ask_transport_subsidy", "confidence": 0.9}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    started = [ParseServer(), ParseServer()]
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def closed_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_parses_go_to_every_server_in_turn_over_kept_connections(servers):
    parse = respond.RasaParser([s.url for s in servers], "t")
    understood = [parse(f"交通补贴{i}") for i in range(6)]
    assert all(u.intent == "ask_transport_subsidy" for u in understood)
    assert [len(s.texts) for s in servers] == [3, 3]
    assert all(len(s.connections) == 1 for s in servers)  # one connection each, kept open


def test_a_server_that_refuses_is_passed_over(servers):
    down = closed_url()
    parse = respond.RasaParser([down, servers[0].url], "t")
    for i in range(4):
        assert parse(f"孩子上学{i}").intent == "ask_transport_subsidy"
    assert servers[0].texts == [f"孩子上学{i}" for i in range(4)]
    # the mark outlives the turn: the next turn's parser (a new object) starts on the live server
    assert respond.RasaParser([down, servers[0].url], "t").replicas.is_down(down)


def test_no_server_at_all_is_no_parse():
    assert respond.RasaParser([closed_url(), closed_url()], "t")("医保") is None


def test_a_clause_the_same_model_read_before_is_not_sent_again(servers, monkeypatch):
    monkeypatch.setattr(respond, "PARSES", respond.ParseCache(size=2))
    urls = [servers[0].url]
    first = respond.RasaParser(urls, "t", "model-a")("在省内")
    first.entities["work_region"] = "省外"  # what one turn does with its copy is not what the next turn gets
    again = respond.RasaParser(urls, "t", "model-a")("在省内")
    assert again.intent == "ask_transport_subsidy" and "work_region" not in again.entities
    assert servers[0].texts == ["在省内"]
    respond.RasaParser(urls, "t", "model-b")("在省内")  # a new model reads it afresh
    respond.RasaParser(urls, "t", None)("在省内")  # so does a turn whose model is not known
    assert servers[0].texts == ["在省内"] * 3
    for text in ("孩子上学", "要带什么材料"):  # a cache of two: "在省内" of model-a is the least recently used
        respond.RasaParser(urls, "t", "model-a")(text)
    respond.RasaParser(urls, "t", "model-a")("在省内")
    assert servers[0].texts[-1] == "在省内" and len(servers[0].texts) == 6


def test_no_answer_is_not_remembered(monkeypatch):
    monkeypatch.setattr(respond, "PARSES", respond.ParseCache())
    assert respond.RasaParser([closed_url()], "t", "model-a")("医保") is None
    assert respond.PARSES.get("model-a", "医保") is None


def test_the_model_is_the_one_that_read_the_residents_message():
    from rasa_sdk import Tracker

    events = [
        {"event": "user", "text": "交通补贴", "metadata": {"model_id": "old"}},
        {"event": "bot", "text": "…", "metadata": {"model_id": "old"}},
        {"event": "user", "text": "那在省内呢", "metadata": {"model_id": "new"}},
        {"event": "action", "name": "action_respond", "metadata": {"model_id": "new"}},
    ]
    tracker = Tracker("s", {}, {}, events, False, None, {}, "action_listen")
    assert respond.model_id(tracker) == "new"
    assert respond.model_id(Tracker("s", {}, {}, [], False, None, {}, "action_listen")) is None
