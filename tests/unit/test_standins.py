"""The sandbox's stand-ins: a stable upstream repository and images named as the data names them."""

from __future__ import annotations

import shutil

import pytest

from sparkdeploy import standins
from sparkdeploy.serving_facts import ContainerStates


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_stand_in_upstream_has_stable_commits_and_the_sandbox_pins_the_first(tmp_path):
    first = standins.ensure_upstream_repo(tmp_path / "one.git")
    again = standins.ensure_upstream_repo(tmp_path / "two.git")
    assert first == again and len(first) == 2
    assert standins.sandbox_data()["upstream_commit"] == first[0], (
        "tests/standins/upstream changed: pin its new first commit in group_data/sandbox.py")


def test_stand_in_images_carry_the_names_the_compose_files_use():
    data = standins.sandbox_data()
    tags = [image.tag for image in standins.standin_images(data)]
    assert data["proxy_image"] in tags and data["proxy_db_image"] in tags
    assert standins.RUNTIME_IMAGE in tags


def test_an_image_hash_changes_with_its_files(tmp_path, monkeypatch):
    (tmp_path / "images" / "x").mkdir(parents=True)
    dockerfile = tmp_path / "images" / "x" / "Dockerfile"
    dockerfile.write_text("FROM base\n")
    monkeypatch.setattr(standins, "STANDINS_DIR", tmp_path)
    image = standins.StandinImage("x:1", "images/x/Dockerfile", {})
    before = image.inputs_hash("base:1")
    assert image.inputs_hash("base:1") == before
    dockerfile.write_text("FROM base\nRUN true\n")
    assert image.inputs_hash("base:1") != before
    assert image.inputs_hash("base:2") != image.inputs_hash("base:1")


def test_container_states_are_read_by_name():
    output = ['"/vllm_node" "running" "healthy"', '"/litellm" "restarting" null', "garbage"]
    assert ContainerStates().process(output) == {
        "vllm_node": {"status": "running", "health": "healthy"},
        "litellm": {"status": "restarting", "health": None},
    }
