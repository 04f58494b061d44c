"""The Kubernetes example names the models, ports and paths that ``pconv triton-repo`` and the
Dockerfile produce (read as text: no YAML library is a dependency)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("tritonclient.grpc", reason="needs tritonclient: pip install 'pconv[serve]'")

from pconv.contract import ADMIN_HEADER
from pconv.models import default_onnx
from pconv.serving.repository import RepoOptions, write_repository
from pconv.serving.server import ADMIN_APIS, ServeOptions

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"


def test_kubernetes_example_matches_the_generated_repository(tmp_path: Path) -> None:
    manifest = (DEPLOY / "triton.yaml").read_text()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    summary = write_repository(default_onnx(), tmp_path / "models", RepoOptions())
    # every model a probe waits for is one the repository holds, and the client-facing ones are probed
    probed = set(re.findall(r"path: /v2/models/([\w-]+)/ready", manifest))
    assert probed == {summary["network"], summary["ensemble"]}
    assert probed <= set(summary["models"])
    # ports: the server's flags, the container ports, the probes and the Service agree with serve's defaults
    defaults = ServeOptions()
    flags = {k: int(v) for k, v in re.findall(r"--(http|grpc|metrics)-port=(\d+)", manifest)}
    assert flags == {"http": defaults.http_port, "grpc": defaults.grpc_port, "metrics": defaults.metrics_port}
    container = {k: int(v) for k, v in re.findall(r"name: (\w+), containerPort: (\d+)", manifest)}
    assert container == flags
    service = {
        k: (int(p), int(t))
        for k, p, t in re.findall(r"name: (\w+), port: (\d+), targetPort: (\d+)", manifest)
    }
    assert service == {k: (v, v) for k, v in flags.items()}
    assert set(re.findall(r"port: (\d+)}", manifest)) == {str(flags["http"])}  # probes on HTTP
    assert re.search(r'prometheus.io/port: "(\d+)"', manifest).group(1) == str(flags["metrics"])  # type: ignore[union-attr]
    # the repository path the server reads is where the Dockerfile puts the repository
    repo_flag = re.search(r"--model-repository=(\S+)", manifest).group(1)  # type: ignore[union-attr]
    assert re.search(rf"COPY \S+/models {re.escape(repo_flag)}$", dockerfile, re.M)
    # the admin restriction is the one `pconv serve --admin-token` applies
    assert manifest.count(f"{ADMIN_APIS}:{ADMIN_HEADER}=") == 2
    # drain: grace period longer than the preStop pause plus Triton's exit timeout
    grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", manifest).group(1))  # type: ignore[union-attr]
    exit_timeout = int(re.search(r"--exit-timeout-secs=(\d+)", manifest).group(1))  # type: ignore[union-attr]
    pause = int(re.search(r'command: \["sleep", "(\d+)"\]', manifest).group(1))  # type: ignore[union-attr]
    assert grace > pause + exit_timeout
