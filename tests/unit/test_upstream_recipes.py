"""Every recipe of eugr/spark-vllm-docker at the pinned commit, as a new user would try it.

Each single-node recipe must render for one Spark with exactly the argv and environment
upstream's own ``run-recipe.py --solo`` gives (``upstream_catalogue``), each cluster-only one
must be refused in one line, none may crash, and each image must be obtained the way upstream's
build-and-copy.sh obtains it.
"""

from __future__ import annotations

import json

import pytest
import yaml
from upstream_catalogue import UPSTREAM, expected, names

from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.image_plan import BUILD, PREBUILT
from sparkdeploy.recipes import command_argv
from sparkdeploy.vllm_service import build_vllm_service


def service_for(name: str):
    data = {**documented_defaults(), "recipe": str(UPSTREAM / name),
            # upstream's recipes listen on 0.0.0.0, as an exposed Spark does
            "vllm_expose_to_lan": True}
    return build_vllm_service("spark", data)


def test_the_catalogue_is_there_and_complete():
    table = expected()
    on_disk = {str(path.relative_to(UPSTREAM)) for path in UPSTREAM.rglob("*.yaml")}
    assert on_disk == set(table) and len(table) == 35


@pytest.mark.parametrize("name", names())
def test_each_recipe_renders_as_upstream_runs_it_or_is_refused_in_one_line(name):
    verdict = expected()[name]
    if verdict["status"] == "solo-refused":
        with pytest.raises(ConfigError) as error:
            service_for(name)
        message = str(error.value)
        assert "\n" not in message and "key 'cluster_only'" in message and "needs a cluster" in message
        return
    service = service_for(name)
    assert command_argv(service.command, name) == verdict["argv"]
    assert dict(service.recipe.env) == verdict["env"]
    compose = service.compose["services"]["vllm"]
    for key, value in verdict["env"].items():
        assert compose["environment"][key] == value


def single_node() -> list[str]:
    return [name for name in names() if expected().get(name, {}).get("status") == "ok"] or ["(missing)"]


@pytest.mark.parametrize("name", single_node())
def test_each_image_is_obtained_the_way_upstreams_build_script_obtains_it(name):
    recipe = yaml.safe_load((UPSTREAM / name).read_text())
    image = service_for(name).image
    flags = recipe.get("build_args") or []
    assert image.image == recipe["container"]
    if "--exp-mxfp4" in flags:
        assert (image.method, image.script_args()[:3]) == (BUILD, ["-t", recipe["container"], "--exp-mxfp4"])
    else:
        # build-and-copy.sh with no build flags pulls the CI-tested prebuilt image and tags it
        source = "eugr/spark-vllm-b12x:latest" if "--exp-b12x" in flags else "eugr/spark-vllm:latest"
        assert (image.method, image.source, image.script_args()) == (
            PREBUILT, source, ["-t", recipe["container"], *flags])
    assert image.checkout is not None and image.checkout.commit.startswith("358bf26")


def single_node() -> list[str]:
    return [name for name in names() if expected().get(name, {}).get("status") == "ok"] or ["(missing)"]


@pytest.mark.parametrize("name", single_node())
def test_every_repository_the_command_loads_is_fetched(name):
    service = service_for(name)
    repos = [repo.repo_id for repo in service.repos]
    recipe = yaml.safe_load((UPSTREAM / name).read_text())
    assert repos[0] == recipe["model"]
    argv = service.argv
    if "--speculative-config" in argv:
        draft = json.loads(argv[argv.index("--speculative-config") + 1]).get("model")
        if draft:
            assert draft in repos
    assert len(repos) == len(set(repos))


def test_draft_models_of_upstream_examples_are_fetched_with_the_model():
    gemma = service_for("gemma4-26b-a4b-nvfp4.yaml")
    assert [(repo.repo_id, repo.role) for repo in gemma.repos] == [
        ("nvidia/Gemma-4-26B-A4B-NVFP4", "model"),
        ("google/gemma-4-26B-A4B-it-assistant", "draft model")]
    dflash = service_for("qwen3.6-35b-a3b-fp8-dflash.yaml")
    assert [repo.repo_id for repo in dflash.repos] == ["Qwen/Qwen3.6-35B-A3B-FP8",
                                                      "z-lab/Qwen3.6-35B-A3B-DFlash"]
