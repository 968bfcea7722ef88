"""``python -m keen.server``: options, start-up text, signals, persistence, config file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from _server_helpers import REPO, TIMEOUT, ServerProcess

from keen.server import DEV_MASTER_KEY, DEV_PROJECT_ID, DEV_READ_KEY, DEV_WRITE_KEY
from keen.server.__main__ import exposure_notes


def project_url(url: str, project_id: str, path: str) -> str:
    return f"{url}/3.0/projects/{project_id}{path}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_starts_prints_exports_serves_and_stops_cleanly(sig: int) -> None:
    server = ServerProcess()
    lines = server.read_banner()
    assert server.url.startswith("http://127.0.0.1:")
    exports = dict(line[len("export "):].split("=", 1) for line in lines
                   if line.startswith("export "))
    assert exports == {"KEEN_BASE_URL": server.url, "KEEN_PROJECT_ID": DEV_PROJECT_ID,
                       "KEEN_WRITE_KEY": DEV_WRITE_KEY, "KEEN_READ_KEY": DEV_READ_KEY,
                       "KEEN_MASTER_KEY": DEV_MASTER_KEY}
    response = requests.post(project_url(server.url, DEV_PROJECT_ID, "/events/c"),
                             json={"a": 1}, headers={"Authorization": DEV_WRITE_KEY},
                             timeout=TIMEOUT)
    assert response.status_code == 201
    code, out, err = server.stop(sig)
    assert code == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


def test_keys_from_options_and_environment() -> None:
    server = ServerProcess("--project-id", "abc", "--write-key", "W1",
                           env={"KEEN_PROJECT_ID": "ignored", "KEEN_READ_KEY": "R1"})
    try:
        lines = server.read_banner()
        assert "export KEEN_PROJECT_ID=abc" in lines
        assert f"export KEEN_MASTER_KEY={DEV_MASTER_KEY}" in lines  # a public dev key
        # keys the user supplied are named, never printed
        assert "# KEEN_READ_KEY: the key from $KEEN_READ_KEY (short), not printed" in lines
        assert "# KEEN_WRITE_KEY: the key from --write-key (short), not printed" in lines
        assert not any("R1" in line or "W1" in line for line in lines)
        ok = requests.post(project_url(server.url, "abc", "/events/c"), json={"a": 1},
                           headers={"Authorization": "W1"}, timeout=TIMEOUT)
        assert ok.status_code == 201
        refused = requests.post(project_url(server.url, "abc", "/events/c"), json={"a": 1},
                                headers={"Authorization": DEV_WRITE_KEY}, timeout=TIMEOUT)
        assert refused.status_code == 401
    finally:
        assert server.stop()[0] == 0


def test_file_database_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "keen.db")
    master = {"Authorization": DEV_MASTER_KEY}
    server = ServerProcess("--db", db)
    try:
        base = project_url(server.url, DEV_PROJECT_ID, "")
        assert requests.post(f"{base}/events", json={"c": [{"a": 1}, {"a": 2}]},
                             headers=master, timeout=TIMEOUT).status_code == 200
        assert requests.put(f"{base}/queries/saved/total", headers=master, timeout=TIMEOUT,
                            json={"query": {"analysis_type": "count", "event_collection": "c",
                                            "timeframe": "this_10_years"}}).status_code == 201
        assert requests.put(f"{base}/datasets/daily", headers=master, timeout=TIMEOUT, json={
            "display_name": "d", "index_by": "a",
            "query": {"analysis_type": "count", "event_collection": "c",
                      "timeframe": "this_10_days", "interval": "daily"}}).status_code == 201
        key = requests.post(f"{base}/keys", json={"permitted": ["queries"]}, headers=master,
                            timeout=TIMEOUT).json()["key"]
    finally:
        assert server.stop()[0] == 0

    server = ServerProcess("--db", db)
    try:
        base = project_url(server.url, DEV_PROJECT_ID, "")
        result = requests.get(f"{base}/queries/saved/total/result", headers=master,
                              timeout=TIMEOUT)
        assert result.json()["result"] == 2
        assert requests.get(f"{base}/datasets/daily", headers=master,
                            timeout=TIMEOUT).status_code == 200
        count = requests.get(f"{base}/queries/count", timeout=TIMEOUT, params={
            "api_key": key, "event_collection": "c", "timeframe": "this_10_years"})
        assert count.json() == {"result": 2}
    finally:
        assert server.stop()[0] == 0


def test_config_file_declares_more_projects(tmp_path: Path) -> None:
    config = tmp_path / "projects.json"
    config.write_text(json.dumps({"projects": [
        {"project_id": "second", "master_key": "M2", "write_key": "W2"}]}))
    server = ServerProcess(env={"KEEN_SERVER_CONFIG": str(config)})
    try:
        assert any("second" in line for line in server.read_banner())
        ok = requests.post(project_url(server.url, "second", "/events/c"), json={"a": 1},
                           headers={"Authorization": "W2"}, timeout=TIMEOUT)
        assert ok.status_code == 201
        # keys do not cross projects
        other = requests.post(project_url(server.url, DEV_PROJECT_ID, "/events/c"),
                              json={"a": 1}, headers={"Authorization": "W2"}, timeout=TIMEOUT)
        assert other.status_code == 401
    finally:
        assert server.stop()[0] == 0


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"projects": [{"project_id": "x"}]}', "master_key"),
    ('{"projects": [{"project_id": "x", "master_key": "m", "colour": 1}]}', "colour"),
])
def test_bad_config_file_is_a_clear_usage_error(tmp_path: Path, content: str,
                                                message: str) -> None:
    config = tmp_path / "projects.json"
    config.write_text(content)
    result = _run_cli("--port", "0", env={"KEEN_SERVER_CONFIG": str(config)})
    assert result.returncode == 2
    assert message in result.stderr


def test_help_lists_exactly_the_documented_options() -> None:
    result = _run_cli("--help")
    assert result.returncode == 0
    options = {word.rstrip(",") for word in result.stdout.split() if word.startswith("--")}
    assert options == {"--help", "--version", "--host", "--port", "--db", "--project-id",
                       "--master-key", "--read-key", "--write-key", "--show-keys",
                       "--allow-origin", "--allow-host", "--expose-faults", "--engine",
                       "--query-time-limit"}
    assert options - {"--help"} == _readme_options()


def _readme_options() -> set[str]:
    """The options of README's table of ``keen-server`` options (its first column)."""
    lines = (REPO / "README.rst").read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.endswith("The options are:"))
    border = next(i for i in range(first, len(lines)) if lines[i].startswith("===="))
    end = next(i for i in range(border + 1, len(lines)) if lines[i].startswith("===="))
    width = len(lines[border].split()[0])
    return {word.strip("`,") for line in lines[border + 1:end]
            for word in line[:width].split() if word.startswith("``--")}


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "1e9", "sixty", ""])
def test_a_bad_query_time_limit_is_a_usage_error_naming_the_option(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from keen.server.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", f"--query-time-limit={value}"])
    assert exited.value.code == 2
    assert "error: argument --query-time-limit: " in capsys.readouterr().err


def test_query_time_limit_option_values() -> None:
    from keen.server.__main__ import _parser

    assert _parser().parse_args([]).query_time_limit == 60
    assert _parser().parse_args(["--query-time-limit", "0"]).query_time_limit is None
    assert _parser().parse_args(["--query-time-limit", "2.5"]).query_time_limit == 2.5


def test_the_query_time_limit_option_reaches_the_server() -> None:
    """40 events whose regex search takes about 0.25 s each: 10 s of work, stopped at 0.5 s."""
    server = ServerProcess("--query-time-limit", "0.5")
    try:
        headers = {"Authorization": DEV_WRITE_KEY}
        written = requests.post(project_url(server.url, DEV_PROJECT_ID, "/events"),
                                json={"c": [{"s": "a" * 9998 + "!"}] * 40}, headers=headers,
                                timeout=TIMEOUT)
        assert written.status_code == 200, written.text
        answer = requests.post(
            project_url(server.url, DEV_PROJECT_ID, "/queries/count"),
            json={"event_collection": "c", "timeframe": "this_1_days", "filters": [
                {"property_name": "s", "operator": "regex", "property_value": "a+$"}]},
            headers={"Authorization": DEV_READ_KEY}, timeout=TIMEOUT)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error_code"] == "QueryTimeoutError"
    finally:
        assert server.stop()[0] == 0


def test_version_and_errors_are_named_as_the_command_was_run(tmp_path: Path) -> None:
    """Issue 8: no --version, and errors said 'keen-server:' under python -m keen.server."""
    import keen

    version = _run_cli("--version")
    assert version.returncode == 0 and f"keen {keen.__version__}" in version.stdout
    result = _run_cli("--port", "0", "--db", str(tmp_path / "missing-dir" / "keen.db"))
    assert result.stderr.startswith("python -m keen.server: cannot open the database")
    bad_port = _run_cli("--port", "70000")
    assert "python -m keen.server: error: --port" in bad_port.stderr
    assert "keen-server" not in bad_port.stderr


def test_the_installed_command_names_itself_keen_server() -> None:
    from keen.server.__main__ import _prog

    assert _prog("/usr/local/bin/keen-server") == "keen-server"
    assert _prog("/x/keen/server/__main__.py") == "python -m keen.server"


@pytest.mark.parametrize("option", ["--master", "--proj", "--write"])
def test_abbreviated_options_are_refused(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    from keen.server.__main__ import _parser

    with pytest.raises(SystemExit) as info:
        _parser().parse_args([option, "x"])
    assert info.value.code == 2
    assert f"unrecognized arguments: {option}" in capsys.readouterr().err


def test_busy_port_is_reported() -> None:
    server = ServerProcess()
    try:
        port = server.url.rsplit(":", 1)[1]
        result = _run_cli("--port", port)
        assert result.returncode == 1
        assert "cannot listen" in result.stderr
    finally:
        server.stop()


def test_unusable_database_is_reported(tmp_path: Path) -> None:
    result = _run_cli("--port", "0", "--db", str(tmp_path / "missing-dir" / "keen.db"))
    assert result.returncode == 1
    assert "cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("KEEN_")}
    environment["PYTHONPATH"] = str(REPO)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "keen.server", *args], capture_output=True,
                          text=True, env=environment, timeout=TIMEOUT * 2, cwd=str(REPO))


def test_keys_from_the_environment_are_printed_only_when_asked() -> None:
    production = "ab" * 31 + "f00d"
    server = ServerProcess(env={"KEEN_MASTER_KEY": production})
    try:
        lines = server.read_banner()
        assert "# KEEN_MASTER_KEY: the key from $KEEN_MASTER_KEY (ending ...f00d), not printed" \
            in lines
        assert not any(production in line for line in lines)
        assert f"export KEEN_WRITE_KEY={DEV_WRITE_KEY}" in lines
    finally:
        assert server.stop()[0] == 0
    server = ServerProcess("--show-keys", env={"KEEN_MASTER_KEY": production})
    try:
        assert f"export KEEN_MASTER_KEY={production}" in server.read_banner()
    finally:
        assert server.stop()[0] == 0


def test_start_up_text_on_a_non_loopback_host() -> None:
    """Said before anything listens there (the test binds only loopback)."""
    notes = exposure_notes("0.0.0.0", [], expose_faults=False)
    assert any("WARNING" in note and "0.0.0.0" in note for note in notes)
    assert any("/_keen/faults is not served" in note for note in notes)
    assert any("--expose-faults)" in note and "is served" in note
               for note in exposure_notes("192.168.1.5", [], expose_faults=True))
    assert not any("WARNING" in note for note in exposure_notes("127.0.0.1", [], False))


def test_browser_options_reach_the_server() -> None:
    server = ServerProcess("--allow-origin", "https://app.example.com", "--allow-host", "devbox")
    try:
        assert any("https://app.example.com" in line for line in server.read_banner())
        origin = {"Origin": "https://app.example.com"}
        ok = requests.get(f"{server.url}/_keen/health", headers=origin, timeout=TIMEOUT)
        assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        foreign = requests.get(f"{server.url}/_keen/health", timeout=TIMEOUT,
                               headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        host = requests.get(f"{server.url}/_keen/health", headers={"Host": "devbox"},
                            timeout=TIMEOUT)
        assert host.status_code == 200
    finally:
        assert server.stop()[0] == 0


def test_a_bad_allowed_origin_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "keen.server", "--allow-origin", "evil"],
                            capture_output=True, text=True, timeout=TIMEOUT, cwd=str(REPO))
    assert result.returncode == 2
    assert "not an origin" in result.stderr


def test_an_all_interfaces_bind_gives_clients_the_loopback_url() -> None:
    """``--host 0.0.0.0`` printed ``KEEN_BASE_URL=http://0.0.0.0:PORT`` and an Explorer
    address that browsers and clients on some systems cannot connect to."""
    from keen.server._http_server import client_url

    assert client_url("0.0.0.0", 8765) == "http://127.0.0.1:8765"
    assert client_url("::", 8765) == "http://[::1]:8765"
    assert client_url("127.0.0.1", 80) == "http://127.0.0.1:80"
    assert client_url("::1", 80) == "http://[::1]:80"
    assert client_url("example.test", 80) == "http://example.test:80"
