"""When the vLLM image is (re)built, what the build runs, and what the image fact reads."""

from __future__ import annotations

import json
import shlex

import pytest

from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.image_build import (
    ImageRecord,
    build_reason,
    build_spec,
    parse_image_record,
    upstream_checkout,
)
from sparkdeploy.vllm_service import build_vllm_service

PINNED = "358bf26e3d7d315450a6159ccdc0b38cbbd6b855"
OTHER = "3298c86046088e4f3e24c3ceb482564cde3ddd84"


def host_data(**overrides):
    return {**documented_defaults(), "recipe": "openai-gpt-oss-120b", **overrides}


def spec_for(**overrides):
    data = host_data(**overrides)
    return build_spec(build_vllm_service("spark", data), data)


def test_the_mxfp4_recipe_is_built_with_its_tag_args_and_jobs_from_data():
    spec = spec_for(upstream_build_jobs=8)
    assert spec.image == "vllm-node-mxfp4"
    assert spec.build_and_copy_args() == ["--exp-mxfp4", "-t", "vllm-node-mxfp4", "-j", "8"]
    assert spec.commit == PINNED
    assert spec.repo_url == "https://github.com/eugr/spark-vllm-docker.git"
    assert spec.checkout_dir == "/home/cluster/spark-vllm-docker"
    assert spec.log_file == "/var/log/sparkdeploy/build-vllm-node-mxfp4.log"


def test_a_recipe_without_build_args_uses_its_image_as_given():
    data = host_data(recipe="qwen3-coder-30b-a3b")
    assert build_spec(build_vllm_service("spark", data), data) is None


@pytest.mark.parametrize("commit", ["main", "358bf26", PINNED.upper(), PINNED + "0"])
def test_the_commit_must_be_a_full_id(commit):
    with pytest.raises(ConfigError, match="upstream_commit"):
        upstream_checkout("spark", host_data(upstream_commit=commit))


def test_the_build_timeout_must_be_positive():
    with pytest.raises(ConfigError, match="upstream_build_timeout"):
        spec_for(upstream_build_timeout=0)


def test_a_missing_image_is_built():
    assert "missing" in build_reason(ImageRecord(present=False), spec_for())


def test_an_image_labelled_with_the_pinned_commit_and_args_is_current():
    spec = spec_for()
    record = ImageRecord(present=True, label={"upstream_commit": PINNED, "build_args": ["--exp-mxfp4"]})
    assert build_reason(record, spec) is None


def test_another_commit_or_other_build_args_rebuild():
    spec = spec_for()
    other_commit = ImageRecord(True, label={"upstream_commit": OTHER, "build_args": ["--exp-mxfp4"]})
    assert "built from commit 3298c8604608, pinned is 358bf26e3d7d" in build_reason(other_commit, spec)
    other_args = ImageRecord(True, label={"upstream_commit": PINNED, "build_args": []})
    assert "the recipe asks for ['--exp-mxfp4']" in build_reason(other_args, spec)


def test_the_job_count_is_not_part_of_the_images_identity():
    assert spec_for(upstream_build_jobs=4).identity == spec_for(upstream_build_jobs=20).identity


def test_an_image_built_by_hand_is_judged_by_its_build_metadata():
    spec = spec_for()
    current = ImageRecord(True, metadata={"build_script_commit": PINNED, "exp_mxfp4": True})
    assert build_reason(current, spec) is None
    stale = ImageRecord(True, metadata={"build_script_commit": OTHER, "exp_mxfp4": True})
    assert "built from commit 3298c8604608" in build_reason(stale, spec)
    regular = ImageRecord(True, metadata={"build_script_commit": PINNED})
    assert "does not record the build flag --exp-mxfp4" in build_reason(regular, spec)
    unknown = ImageRecord(True)
    assert "does not record what it was built from" in build_reason(unknown, spec)


def test_the_fact_output_is_parsed_into_label_or_metadata():
    label = {"upstream_commit": PINNED, "build_args": ["--exp-mxfp4"]}
    assert parse_image_record(["missing"]) == ImageRecord(False)
    assert parse_image_record([]) == ImageRecord(False)
    assert parse_image_record(["label " + json.dumps(label)]) == ImageRecord(True, label=label)
    record = parse_image_record(["present", "metadata build_date: \"2026-08-14\"",
                                 f"metadata build_script_commit: \"{PINNED}\"", "metadata exp_mxfp4: true"])
    assert record.label is None
    assert record.metadata == {"build_date": "2026-08-14", "build_script_commit": PINNED, "exp_mxfp4": True}
    assert parse_image_record(["present"]) == ImageRecord(True)


def test_the_build_starts_detached_with_a_log_and_timeout_and_never_twice():
    spec = spec_for(upstream_build_timeout=3600)
    command = spec.start_command()
    assert "setsid nohup /usr/local/lib/sparkdeploy/build-vllm-image" in command
    assert f"> {spec.log_file} 2>&1 < /dev/null &" in command
    assert "kill -0" in command and "already running" in command
    runner = shlex.split(command.split("setsid nohup ", 1)[1].split(" >", 1)[0])
    assert runner[1:6] == [spec.checkout_dir, "vllm-node-mxfp4", spec.label, "3600", spec.status_file]
    assert runner[6:] == ["--", "--exp-mxfp4", "-t", "vllm-node-mxfp4", "-j", "16"]
    assert json.loads(spec.label) == {"build_args": ["--exp-mxfp4"], "upstream_commit": PINNED}
