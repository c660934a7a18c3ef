"""The opening handshake, sans I/O: RequestParser, validate_upgrade, responses."""

from __future__ import annotations

import pytest

from rawclient import SAMPLE_WS_KEY, upgrade_request
from wsserver.protocol import HandshakeError, RequestParser, validate_upgrade
from wsserver.protocol.handshake import Request, accept_key, http_response, switching_protocols_response


def parse(data: bytes, **limits: int) -> Request:
    parser = RequestParser(**limits)
    request = parser.feed(data)
    assert request is not None
    return request


def refusal(data: bytes) -> HandshakeError:
    with pytest.raises(HandshakeError) as caught:
        validate_upgrade(parse(data))
    return caught.value


def test_accept_key_of_the_rfc_6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_switching_protocols_response() -> None:
    response = switching_protocols_response(SAMPLE_WS_KEY, "chat", None).decode("latin-1")
    lines = response.split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in lines
    assert "Sec-WebSocket-Protocol: chat" in lines
    assert "Upgrade: websocket" in lines and "Connection: Upgrade" in lines
    assert response.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Protocol" not in switching_protocols_response(SAMPLE_WS_KEY).decode()


def test_http_response_has_length_and_closes() -> None:
    response = http_response(404, "not here\n", [("X-Test", "1")])
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"Content-Length: 9" in head and b"X-Test: 1" in head and b"Connection: close" in head
    assert body == b"not here\n"


def test_parser_gives_method_path_query_headers() -> None:
    request = parse(upgrade_request("/chat/room?name=a%20b&x=1&x=2", headers=[("X-Custom", "yes"), ("x-custom", "again")]))
    assert request.method == "GET"
    assert request.target == "/chat/room?name=a%20b&x=1&x=2"
    assert request.path == "/chat/room"
    assert request.query == "name=a%20b&x=1&x=2"
    assert request.params == {"name": ["a b"], "x": ["1", "2"]}
    assert request.http_version == "1.1"
    assert request.headers["host"] == "127.0.0.1"
    assert request.headers.get_all("X-CUSTOM") == ["yes", "again"]
    assert "sec-websocket-key" in request.headers
    assert request.headers.get("missing") is None


def test_parser_needs_the_whole_head_and_keeps_the_trailing_bytes() -> None:
    data = upgrade_request() + b"\x81\x85frame"
    parser = RequestParser()
    cut = len(upgrade_request()) - 1
    for index in range(cut):
        assert parser.feed(data[index : index + 1]) is None
    request = parser.feed(data[cut:])
    assert request is not None and request.path == "/"
    assert parser.upgrade
    assert parser.trailing == b"\x81\x85frame"


def test_plain_request_is_not_an_upgrade() -> None:
    parser = RequestParser()
    request = parser.feed(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    assert request is not None and request.path == "/index.html"
    assert not parser.upgrade


def test_malformed_http_is_400() -> None:
    with pytest.raises(HandshakeError) as caught:
        RequestParser().feed(b"THIS IS NOT HTTP\r\n\r\n")
    assert caught.value.status == 400


def test_too_many_headers_is_431() -> None:
    headers = [(f"X-H{i}", "v") for i in range(20)]
    with pytest.raises(HandshakeError) as caught:
        RequestParser(max_headers=10).feed(upgrade_request(headers=headers))
    assert caught.value.status == 431


def test_header_too_large_in_pieces_is_431() -> None:
    parser = RequestParser(max_header_size=1024)
    data = upgrade_request(headers=[("X-Big", "a" * 4000)])
    with pytest.raises(HandshakeError) as caught:
        for index in range(0, len(data), 100):
            parser.feed(data[index : index + 100])
    assert caught.value.status == 431


def test_header_too_large_in_one_piece_is_431() -> None:
    with pytest.raises(HandshakeError) as caught:
        RequestParser(max_header_size=1024).feed(upgrade_request(headers=[("X-Big", "a" * 4000)]))
    assert caught.value.status == 431


def test_request_target_too_large_is_refused() -> None:
    with pytest.raises(HandshakeError) as caught:
        RequestParser(max_header_size=1024).feed(upgrade_request("/" + "p" * 4000))
    assert caught.value.status == 414


def test_head_just_under_the_limit_is_fine() -> None:
    data = upgrade_request(headers=[("X-Big", "a" * 800)])
    assert len(data) < 1024
    assert RequestParser(max_header_size=1024).feed(data) is not None


def test_valid_upgrade_request() -> None:
    upgrade = validate_upgrade(parse(upgrade_request(headers=[("Sec-WebSocket-Protocol", "chat, superchat"), ("Sec-WebSocket-Protocol", "other")])))
    assert upgrade.key == SAMPLE_WS_KEY
    assert upgrade.protocols == ["chat", "superchat", "other"]


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD", "DELETE", "OPTIONS"])
def test_method_other_than_get_is_405(method: str) -> None:
    error = refusal(upgrade_request(method=method))
    assert error.status == 405
    assert ("Allow", "GET") in error.headers


@pytest.mark.parametrize("version", ["12", "8", "14", "", "13, 8"])
def test_version_other_than_13_is_426_with_the_supported_version(version: str) -> None:
    error = refusal(upgrade_request(omit=("Sec-WebSocket-Version",), headers=[("Sec-WebSocket-Version", version)]))
    assert error.status == 426
    assert ("Sec-WebSocket-Version", "13") in error.headers


def test_missing_version_is_426() -> None:
    error = refusal(upgrade_request(omit=("Sec-WebSocket-Version",)))
    assert error.status == 426


@pytest.mark.parametrize(
    ("upgrade", "connection"),
    [
        ("websocket", "Upgrade"),
        ("WebSocket", "upgrade"),
        ("WEBSOCKET", "UPGRADE"),
        ("websocket", "keep-alive, Upgrade"),
        ("websocket", "Upgrade, keep-alive"),
        ("h2c, websocket", "keep-alive,upgrade"),
    ],
)
def test_upgrade_and_connection_tokens_are_case_insensitive(upgrade: str, connection: str) -> None:
    request = parse(upgrade_request(omit=("Upgrade", "Connection"), headers=[("Upgrade", upgrade), ("Connection", connection)]))
    assert validate_upgrade(request).key == SAMPLE_WS_KEY


@pytest.mark.parametrize("upgrade", ["h2c", "websockets", "web socket"])
def test_bad_upgrade_token_is_400(upgrade: str) -> None:
    error = refusal(upgrade_request(omit=("Upgrade",), headers=[("Upgrade", upgrade)]))
    assert error.status == 400


def test_connection_header_without_upgrade_token_is_400() -> None:
    error = refusal(upgrade_request(omit=("Connection",), headers=[("Connection", "keep-alive")]))
    assert error.status == 400


@pytest.mark.parametrize(
    "key",
    [
        "",
        "dGhlIHNhbXBsZSBub25jZQ",  # padding missing
        "dGhlIHNhbXBsZSBub25j",  # 15 bytes
        "dGhlIHNhbXBsZSBub25jZQAA",  # 17 bytes
        "not base64 at all!!!!!==",
        "dGhlIHNhbXBsZSBub25jZQ==dGhl",
    ],
)
def test_key_that_is_not_16_bytes_of_base64_is_400(key: str) -> None:
    error = refusal(upgrade_request(key=key))
    assert error.status == 400


def test_missing_key_is_400() -> None:
    assert refusal(upgrade_request(omit=("Sec-WebSocket-Key",))).status == 400


def test_repeated_key_is_400() -> None:
    assert refusal(upgrade_request(headers=[("Sec-WebSocket-Key", SAMPLE_WS_KEY)])).status == 400


def test_missing_host_is_400() -> None:
    assert refusal(upgrade_request(omit=("Host",))).status == 400


def test_http_1_0_is_400() -> None:
    assert refusal(upgrade_request(version="HTTP/1.0")).status == 400
