"""Webhook URLs: http(s) only, and outside local runs and tests only public addresses, checked
when registered and again at every delivery; one POST with short timeouts, no redirects."""

from __future__ import annotations

import socket
import threading

import pytest

from integrations import net


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/hook", "Only http"),
        ("javascript:alert(1)", "Only http"),
        ("https://", "no host"),
        ("https://user:pw@93.184.216.34/hook", "user name"),
        ("https://93.184.216.34/hook#frag", "fragment"),
        ("https://93.184.216.34/ hook", "spaces"),
        ("https://93.184.216.34:99999/", "not valid"),
        ("", "Give the URL"),
        ("https://93.184.216.34/" + "a" * 500, "longer than"),
    ],
)
def test_malformed_urls_are_refused(url, message):
    with pytest.raises(net.UnsafeURL, match=message):
        net.url_check(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/hook",  # shared address space
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",  # v4-mapped loopback
        "http://[fd00::1]/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_loopback_private_and_reserved_addresses_are_refused_in_production(url):
    with pytest.raises(net.UnsafeURL, match="public addresses only") as exc:
        net.url_check(url, allow_private=False)
    assert exc.value.code == "invalid_url"


def test_a_public_name_is_allowed_and_one_resolving_inside_is_not(monkeypatch):
    answers = {"hooks.example.com": ["93.184.216.34"], "sneaky.example.com": ["93.184.216.34", "10.0.0.7"]}
    monkeypatch.setattr(net, "resolve", lambda host, port: answers[host])
    target = net.url_check("https://hooks.example.com/in?x=1", allow_private=False)
    assert (target.scheme, target.host, target.port, target.path) == ("https", "hooks.example.com", 443, "/in?x=1")
    with pytest.raises(net.UnsafeURL, match="10.0.0.7"):
        net.url_check("https://sneaky.example.com/in", allow_private=False)


def test_a_name_that_does_not_resolve_is_refused(monkeypatch):
    def fail(host, port):
        raise socket.gaierror("no such name")

    monkeypatch.setattr(net, "resolve", fail)
    with pytest.raises(net.UnsafeURL, match="cannot be resolved"):
        net.url_check("https://nowhere.invalid/", allow_private=False)


def test_the_setting_allows_loopback_for_local_runs(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    assert net.url_check("http://127.0.0.1:9/x").addresses == ("127.0.0.1",)
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(net.UnsafeURL):
        net.url_check("http://127.0.0.1:9/x")


def test_a_delivery_to_an_address_that_became_private_is_refused_without_connecting(settings, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    result = net.post_json(receiver.url, b"{}", {})
    assert result.status is None and "public addresses only" in result.error
    assert receiver.requests == []


def test_post_answers_status_and_keeps_only_the_start_of_the_body(receiver):
    result = net.post_json(receiver.url, b'{"a":1}', {"Content-Type": "application/json"})
    assert result.ok and result.status == 200 and result.body == "ok"
    assert receiver.requests[0].body == b'{"a":1}'


def test_redirects_are_not_followed(receiver):
    receiver.responses = [302]
    result = net.post_json(receiver.url, b"{}", {})
    assert not result.ok and "not followed" in result.error
    assert len(receiver.requests) == 1


def test_a_closed_port_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = net.post_json(f"http://127.0.0.1:{port}/", b"{}", {})
    assert result.status is None and "Connection" in result.error


def test_a_server_that_never_answers_is_cut_off(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        result = net.post_json(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {})
    finally:
        for conn in accepted:
            conn.close()
        listener.close()
    assert result.status is None and "timed out" in result.error.lower()
    assert result.duration_ms < 2000


def test_registering_in_a_local_run_looks_nothing_up(monkeypatch):
    def never(host, port):
        raise AssertionError("no DNS query when private hosts are allowed")

    monkeypatch.setattr(net, "resolve", never)
    target = net.url_check("https://unknown.example/x", allow_private=True, resolve_host=False)
    assert target.host == "unknown.example" and target.addresses == ()
