"""The alert sender against a real HTTP receiver through apprise: delivery, a hanging and a failing
notifier that never hold the caller, the rate limits on a fake clock, URLs kept out of the logs, and
where URLs may (and may not) come from."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from cappuccino_daemon.alerts.events import Alert
from cappuccino_daemon.alerts.sender import AlertSender
from cappuccino_daemon.alerts.testing import Receiver
from cappuccino_daemon.alerts.urls import ENV_VAR, describe, notify_urls
from cappuccino_daemon.config import load_settings
from cappuccino_daemon.errors import ConfigError


def test_an_alert_arrives_with_its_title_body_and_severity(receiver: Receiver) -> None:
    sender = AlertSender([receiver.url()], timeout_s=5).start()
    sender.post(Alert("model_halted", "t3358 halted", "max_drawdown 21% reached 20%", key="t3358"))
    (message,) = receiver.wait_for(1)
    sender.close()
    assert message["title"] == "t3358 halted" and message["message"] == "max_drawdown 21% reached 20%"
    assert message["type"] == "failure" and sender.sent == 1


def test_a_hanging_notifier_never_holds_the_caller_and_a_failing_one_is_logged(receiver: Receiver) -> None:
    receiver.hang = True
    sender = AlertSender([receiver.url()], timeout_s=1).start()
    sender.post(Alert("parity_alarm", "first", "held by the receiver", key="a"))
    receiver.wait_for(1)  # the thread is now inside the send, the receiver not answering
    for i in range(3):  # the caller goes on: post returns while the notifier hangs
        sender.post(Alert("daily_summary", f"day {i}", "queued", key=str(i)))
    assert len(receiver.messages) == 1
    receiver.status, receiver.hang = 500, False
    receiver.release.set()
    with structlog.testing.capture_logs() as logs:
        receiver.wait_for(4)
        sender.close()
    assert len(receiver.messages) == 4  # every queued alert was still tried after the timeout
    assert sender.failed == 4 and sender.sent == 0
    assert any(e["event"] == "alert_failed" and e["to"] == "1 URL(s): json" for e in logs)


def test_the_timeout_ends_a_send_the_receiver_never_answers(receiver: Receiver) -> None:
    receiver.hang = True
    sender = AlertSender([receiver.url()], timeout_s=0.5).start()
    sender.post(Alert("worker_given_up", "first", "never answered", key="a"))
    receiver.wait_for(1)  # the first request is in, and stays unanswered until the test ends
    receiver.hang = False
    sender.post(Alert("worker_given_up", "second", "answered", key="b"))
    messages = receiver.wait_for(2)  # only arrives once the timeout ended the first send
    sender.close(timeout_s=5)
    assert [m["title"] for m in messages] == ["first", "second"]
    assert not receiver.release.is_set()  # nothing but the timeout let the sender go on
    assert sender.failed == 1 and sender.sent == 1


def test_close_gives_up_on_a_notifier_that_never_answers(receiver: Receiver) -> None:
    receiver.hang = True
    sender = AlertSender([receiver.url()], timeout_s=30).start()
    for i in range(3):
        sender.post(Alert("parity_alarm", f"alarm {i}", "held", key=str(i)))
    receiver.wait_for(1)
    thread = sender._thread
    assert thread is not None
    sender.close(timeout_s=0.2)  # returns while the send is in flight and two more are queued
    assert thread.is_alive() and sender._thread is None and sender.sent == 0


def test_rate_limits_on_a_fake_clock_and_what_they_dropped_is_counted() -> None:
    now = [0.0]
    delivered: list[Alert] = []
    sender = AlertSender(
        ["json://x/"],
        max_per_minute=2,
        repeat_after_s=600,
        clock=lambda: now[0],
        deliver=lambda _u, alert, _t: delivered.append(alert) is None,
    )
    for alert in (
        Alert("parity_alarm", "p", "bar 1", key="m1"),
        Alert("parity_alarm", "p", "bar 2", key="m1"),  # the same alert again: dropped
        Alert("model_halted", "h", "m2", key="m2"),
        Alert("model_halted", "h", "m3", key="m3"),  # a third in one minute: dropped
    ):
        assert sender._allowed(alert) == (alert.body in ("bar 1", "m2"))
    for alert in (Alert("parity_alarm", "p", "bar 1", key="m1"), Alert("model_halted", "h", "m2", key="m2")):
        sender._send(alert)
    now[0] = 61.0
    late = Alert("model_halted", "h", "m3 again", key="m3")
    assert sender._allowed(late)
    sender._send(late)
    assert "2 more alert(s) dropped by the rate limit" in delivered[0].body
    assert "dropped" not in delivered[2].body and sender.dropped == 2
    now[0] = 700.0
    assert sender._allowed(Alert("parity_alarm", "p", "bar 9", key="m1"))


def test_urls_never_reach_the_logs(receiver: Receiver) -> None:
    token = "SECRETtoken0123456789"
    url = receiver.url(f"hook/{token}")
    urls = notify_urls({ENV_VAR: url})
    with structlog.testing.capture_logs() as logs:
        sender = AlertSender(urls, timeout_s=5).start()
        sender.post(Alert("worker_given_up", "given up", "exit 78"))
        receiver.wait_for(1)
        sender.close()
    assert sender.sent == 1
    assert token not in repr(logs) and describe(urls) == "1 URL(s): json"
    from cappuccino_daemon.logsetup import redact_text

    assert token not in redact_text(f"apprise said: POST {url}")


def test_urls_from_the_environment_or_a_systemd_credential(tmp_path: Path) -> None:
    assert notify_urls({ENV_VAR: "json://a/x, ntfy://b/topic\njson://c/y"}) == [
        "json://a/x",
        "ntfy://b/topic",
        "json://c/y",
    ]
    (tmp_path / "notify_urls").write_text("# ops\ntgram://123456789:ABCdefGHIjklMNOpqr/42\n")
    assert notify_urls({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == [
        "tgram://123456789:ABCdefGHIjklMNOpqr/42"
    ]
    assert notify_urls({}) == [] and not AlertSender([]).start().enabled
    (tmp_path / "notify_urls").write_bytes(b"\xff\xfe not text")
    with structlog.testing.capture_logs() as logs:  # a credential we cannot read is said, not swallowed
        assert notify_urls({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == []
    assert [e["event"] for e in logs] == ["notify_credential_unreadable"]
    assert logs[0]["error"] == "UnicodeDecodeError"


def test_urls_in_the_toml_are_refused(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "m"\n[notify]\nurls = ["tgram://token/chat"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "CAPPUCCINO_NOTIFY_URLS" in str(info.value) and "LoadCredential=notify_urls" in str(info.value)
    config.write_text('[model]\ndir = "m"\n[notify]\nmax_per_minute = 2\ntimeout_s = inf\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "notify.timeout_s" in str(info.value)
