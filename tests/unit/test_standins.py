"""The sandbox's stand-ins: a stable upstream repository and images named as the data names them."""

from __future__ import annotations

import shutil

import pytest

from sparkdeploy import standins
from sparkdeploy.sandbox import registry_standin
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
    output = ['"/vllm_node" "running" "sha256:1" "healthy"', '"/litellm" "restarting" "sha256:2" null',
              "garbage"]
    assert ContainerStates().process(output) == {
        "vllm_node": {"status": "running", "image": "sha256:1", "health": "healthy"},
        "litellm": {"status": "restarting", "image": "sha256:2", "health": None},
    }


def test_the_stand_in_upstream_pulls_what_the_sandbox_data_says_upstream_pulls():
    script = (standins.UPSTREAM_SOURCE / "build-and-copy.sh").read_text()
    prebuilt = standins.sandbox_data()["upstream_prebuilt_images"]
    assert f'PREBUILT_RUNNER_IMAGE="{prebuilt["default"]}"' in script
    assert f'PREBUILT_B12X_RUNNER_IMAGE="{prebuilt["b12x"]}"' in script
    host = registry_standin.certs_dir_name()
    assert all(reference.startswith(host + "/") for reference in prebuilt.values())
    pushed = {f"{host}/{path}" for path in standins.PREBUILT_IMAGES.values()}
    assert set(prebuilt.values()) <= pushed


def test_the_stand_in_recipes_weights_are_on_the_stand_in_hub():
    from sparkdeploy.sandbox.hub_standin import EXTRA_REPOS
    from sparkdeploy.vllm_service import build_vllm_service

    data = {**standins.sandbox_data(), "recipe": "tests/standins/recipes/qwen3.6-35b-a3b-dflash.yaml"}
    service = build_vllm_service("sandbox", data)
    assert [repo.repo_id for repo in service.repos] == list(EXTRA_REPOS)
    assert service.image.source == standins.sandbox_data()["upstream_prebuilt_images"]["default"]
