"""ServeResult renders itself as every use case's result does: JSON and Markdown, saying where it really listened."""

from __future__ import annotations

import json
from pathlib import Path

from facebatch.workflows.serve import ServeResult


def test_the_result_says_where_it_listened_in_json_and_markdown():
    result = ServeResult(
        repository=Path("repo"),
        binary=Path("tritonserver"),
        source="nvidia-pytriton",
        address="0.0.0.0",
        http_url="127.0.0.1:8000",
        grpc_url="127.0.0.1:8001",
        metrics_url=None,
        exposure="inference and health are open to other hosts",
        listening={"http": "0.0.0.0:8000", "grpc": "[::]:8001"},
        models=["face_pipeline"],
        seconds=3.2,
        signal="SIGINT",
    )
    markdown = result.to_markdown()
    assert "HTTP 0.0.0.0:8000 (here: 127.0.0.1:8000), gRPC [::]:8001 (here: 127.0.0.1:8001)" in markdown
    assert "Models: face_pipeline; served 3 s, stopped by SIGINT." in markdown and result.exposure in markdown
    assert json.loads(result.to_json())["listening"] == result.listening
