"""How each recipe's image is obtained (upstream's build-and-copy.sh rules), when a host's image is
current, and what the detached runner is given."""

from __future__ import annotations

import json
import shlex

import pytest

from sparkdeploy.data import documented_defaults
from sparkdeploy.errors import ConfigError
from sparkdeploy.image_build import image_job
from sparkdeploy.image_plan import (
    BUILD,
    PREBUILT,
    PULL,
    ImageRecord,
    image_plan,
    image_reason,
    parse_image_record,
    repository,
    upstream_checkout,
)
from sparkdeploy.serving_facts import GitCheckout

PINNED = "358bf26e3d7d315450a6159ccdc0b38cbbd6b855"
OTHER = "3298c86046088e4f3e24c3ceb482564cde3ddd84"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64


def plan(container="vllm-node", build_args=(), **data):
    return image_plan("spark", container, tuple(build_args), "recipe.yaml",
                      {**documented_defaults(), **data})


@pytest.mark.parametrize(("container", "build_args", "method", "source"), [
    ("vllm-node", [], PREBUILT, "eugr/spark-vllm:latest"),
    ("vllm-node-b12x", ["--exp-b12x"], PREBUILT, "eugr/spark-vllm-b12x:latest"),
    ("vllm-node-b12x", ["--experimental-b12x"], PREBUILT, "eugr/spark-vllm-b12x:latest"),
    # upstream pulls the regular prebuilt image for any tag when no flag asks for B12X
    ("vllm-node-b12x", [], PREBUILT, "eugr/spark-vllm:latest"),
    ("vllm-node", ["--tf5"], PREBUILT, "eugr/spark-vllm:latest"),
    ("vllm-node", ["--full-log"], PREBUILT, "eugr/spark-vllm:latest"),
    ("vllm-node", ["--gpu-arch", "12.1a"], PREBUILT, "eugr/spark-vllm:latest"),
    ("vllm-node", ["--torch-version=2.13.0"], PREBUILT, "eugr/spark-vllm:latest"),
    ("vllm-node-mxfp4", ["--exp-mxfp4"], BUILD, None),
    ("vllm-node", ["--use-wheels"], BUILD, None),
    ("vllm-node", ["--gpu-arch", "12.0f"], BUILD, None),
    ("vllm-node", ["--torch-version", "2.14.0"], BUILD, None),
    ("vllm-node", ["--vllm-ref", "v0.33.0"], BUILD, None),
    ("vllm-node", ["--apply-vllm-pr", "40991"], BUILD, None),
    ("vllm-node-b12x", ["--exp-b12x", "--rebuild-vllm"], BUILD, None),
    ("nvcr.io/nvidia/vllm:25.12-py3", [], PULL, "nvcr.io/nvidia/vllm:25.12-py3"),
    ("nvcr.io/nvidia/vllm:25.12-py3", ["--exp-mxfp4"], BUILD, None),
])
def test_the_method_follows_upstreams_build_script(container, build_args, method, source):
    made = plan(container, build_args)
    assert (made.method, made.source) == (method, source)
    assert made.runs_upstream_script == (method != PULL)


def test_the_script_gets_the_tag_and_the_recipes_flags_and_jobs_only_when_it_builds():
    assert plan().script_args() == ["-t", "vllm-node"]
    assert plan("vllm-node-mxfp4", ["--exp-mxfp4"], upstream_build_jobs=8).script_args() == [
        "-t", "vllm-node-mxfp4", "--exp-mxfp4", "-j", "8"]


@pytest.mark.parametrize(("build_args", "problem"), [
    (["--exp-typo"], "build-and-copy.sh does not know '--exp-typo'"),
    (["-t", "other"], "-t is not for a recipe: the tag is the recipe's container"),
    (["-j", "4"], "jobs come from upstream_build_jobs"),
    (["--copy-to", "spark2"], "the deploy copies images itself"),
    (["--setup"], "interactive discovery"),
    (["--vllm-ref"], "--vllm-ref needs a value"),
    (["--exp-b12x", "--exp-mxfp4"], "refuses --exp-b12x together with --exp-mxfp4"),
    (["--exp-mxfp4", "--apply-vllm-pr", "1"], "refuses --exp-mxfp4 together with --apply-vllm-pr"),
    (["--exp-b12x", "--use-wheels"], "refuses --exp-b12x together with --use-wheels"),
])
def test_flags_upstreams_script_would_reject_are_errors_naming_the_recipe(build_args, problem):
    with pytest.raises(ConfigError) as error:
        plan("vllm-node", build_args)
    assert str(error.value).startswith("recipe.yaml: key 'build_args'")
    assert problem in str(error.value)


def test_a_pin_pulls_that_digest_itself_and_needs_no_checkout():
    pinned = plan(vllm_image_pins={"vllm-node": DIGEST})
    assert pinned.pull_reference == f"eugr/spark-vllm@{DIGEST}"
    assert pinned.checkout is None
    registry = plan("nvcr.io/nvidia/vllm:25.12-py3", vllm_image_pins={
        "nvcr.io/nvidia/vllm:25.12-py3": DIGEST})
    assert registry.pull_reference == f"nvcr.io/nvidia/vllm@{DIGEST}"
    assert plan("nvcr.io/nvidia/vllm:25.12-py3").pull_reference == "nvcr.io/nvidia/vllm:25.12-py3"
    assert plan().pull_reference is None  # upstream's script pulls


@pytest.mark.parametrize(("pins", "problem"), [
    ({"vllm-node": "latest"}, "is not an image digest"),
    ({"vllm-node": "sha256:abc"}, "is not an image digest"),
    ([DIGEST], "expected a mapping"),
])
def test_a_bad_pin_is_an_error(pins, problem):
    with pytest.raises(ConfigError, match=problem):
        plan(vllm_image_pins=pins)


def test_a_locally_built_image_cannot_be_pinned_by_digest():
    with pytest.raises(ConfigError, match="a built image is pinned by upstream_commit"):
        plan("vllm-node-mxfp4", ["--exp-mxfp4"], vllm_image_pins={"vllm-node-mxfp4": DIGEST})


def test_repository_drops_tag_and_digest_but_keeps_a_registry_port():
    assert repository("eugr/spark-vllm:latest") == "eugr/spark-vllm"
    assert repository(f"nvcr.io/nvidia/vllm@{DIGEST}") == "nvcr.io/nvidia/vllm"
    assert repository("registry:5000/eugr/spark-vllm:latest") == "registry:5000/eugr/spark-vllm"
    assert repository("vllm-node") == "vllm-node"


@pytest.mark.parametrize(("commit", "url"), [
    ("main", "https://github.com/eugr/spark-vllm-docker.git"),
    ("358bf26", "https://github.com/eugr/spark-vllm-docker.git"),
    (PINNED.upper(), "https://github.com/eugr/spark-vllm-docker.git"),
    (PINNED + "\n", "https://github.com/eugr/spark-vllm-docker.git"),
    (PINNED, "--upload-pack=touch /tmp/x"),
    (PINNED, "https://example.org/repo.git\n--bare"),
])
def test_the_checkout_needs_a_full_commit_and_a_url_git_cannot_read_as_an_option(commit, url):
    with pytest.raises(ConfigError):
        upstream_checkout("spark", {**documented_defaults(), "upstream_commit": commit,
                                    "upstream_repo_url": url})


def test_the_checkout_is_roots_outside_the_service_home_by_default():
    assert plan().checkout.directory == "/opt/sparkdeploy/spark-vllm-docker"


# --- is the host's image current? -------------------------------------------------------------


def made(identity=None, digest=None, metadata=None):
    return ImageRecord(True, image_id="sha256:" + "1" * 64, identity=identity, digest=digest,
                       metadata=metadata)


def test_a_missing_image_is_made():
    assert "missing" in image_reason(ImageRecord(False), plan())


def test_the_record_of_the_same_method_commit_and_flags_is_current():
    prebuilt = plan()
    assert image_reason(made(prebuilt.identity, DIGEST), prebuilt) is None
    mxfp4 = plan("vllm-node-mxfp4", ["--exp-mxfp4"])
    assert image_reason(made(mxfp4.identity), mxfp4) is None
    assert plan("vllm-node-mxfp4", ["--exp-mxfp4"], upstream_build_jobs=4).identity == mxfp4.identity


def test_another_commit_flags_or_method_is_made_again():
    mxfp4 = plan("vllm-node-mxfp4", ["--exp-mxfp4"])
    other_commit = {**mxfp4.identity, "upstream_commit": OTHER}
    assert "made at upstream commit 3298c8604608, pinned is 358bf26e3d7d" in image_reason(
        made(other_commit), mxfp4)
    assert "the recipe asks for ['--exp-mxfp4']" in image_reason(
        made({**mxfp4.identity, "build_args": []}), mxfp4)
    assert "made by pull, the recipe now wants prebuilt" in image_reason(
        made({"method": PULL, "source": "vllm-node"}), plan())


def test_a_pinned_image_is_current_exactly_when_it_is_that_digest():
    pinned = plan(vllm_image_pins={"vllm-node": DIGEST})
    assert image_reason(made(pinned.identity, DIGEST), pinned) is None
    # the image upstream's script pulled happens to be the pinned one: nothing to pull
    assert image_reason(made(plan().identity, DIGEST), pinned) is None
    assert "is sha256:bbbbbbbbbbbb, pinned is sha256:aaaaaaaaaaaa" in image_reason(
        made(plan().identity, OTHER_DIGEST), pinned)


def test_an_image_changed_outside_sparkdeploy_is_made_again():
    assert "carries no sparkdeploy record" in image_reason(made(), plan())


def test_a_hand_built_image_is_judged_by_upstreams_build_metadata():
    mxfp4 = plan("vllm-node-mxfp4", ["--exp-mxfp4"])
    # upstream nests the flags under build_args (358bf26's generate_build_metadata)
    current = {"build_script_commit": PINNED, "build_args": {"exp_mxfp4": True}}
    assert image_reason(made(metadata=current), mxfp4) is None
    assert image_reason(made(metadata={"build_script_commit": PINNED, "exp_mxfp4": True}), mxfp4) is None
    assert "built at upstream commit 3298c8604608" in image_reason(
        made(metadata={**current, "build_script_commit": OTHER}), mxfp4)
    assert "does not record the build flag --exp-mxfp4" in image_reason(
        made(metadata={"build_script_commit": PINNED, "build_args": {"exp_mxfp4": False}}), mxfp4)
    assert "does not record what it was built from" in image_reason(made(), mxfp4)


def test_the_fact_output_is_parsed_into_a_record():
    label = json.dumps(plan().identity)
    image_id = "sha256:" + "2" * 64
    assert parse_image_record(["missing"]) == ImageRecord(False)
    assert parse_image_record([]) == ImageRecord(False)
    record = parse_image_record([f"id {image_id}", f"label {label}", f"digest {DIGEST}",
                                 "legacy <no value>"])
    assert record == ImageRecord(True, image_id=image_id, identity=plan().identity, digest=DIGEST)
    unlabelled = parse_image_record([f"id {image_id}", "label <no value>", "digest <no value>",
                                     "legacy <no value>", "metadata build_script_commit: abc",
                                     "metadata build_args:", "metadata   exp_mxfp4: true"])
    assert (unlabelled.identity, unlabelled.digest) == (None, None)
    assert unlabelled.metadata == {"build_script_commit": "abc", "build_args": {"exp_mxfp4": True}}


def test_an_image_built_by_an_earlier_sparkdeploy_keeps_counting_as_built():
    legacy = json.dumps({"upstream_commit": PINNED, "build_args": ["--exp-mxfp4"]})
    record = parse_image_record(["id sha256:x", "label <no value>", "digest ", f"legacy {legacy}"])
    assert image_reason(record, plan("vllm-node-mxfp4", ["--exp-mxfp4"])) is None


# --- the runner --------------------------------------------------------------------------------


def runner_of(job):
    command = job.start_command()
    assert "kill -0" in command and "already running" in command
    assert f"> {job.log_file} 2>&1 < /dev/null &" in command
    return shlex.split(command.split("setsid nohup ", 1)[1].split(" >", 1)[0])


def test_a_build_runs_upstreams_script_detached_with_the_label_to_record():
    data = {**documented_defaults(), "upstream_build_timeout": 3600}
    made_plan = plan("vllm-node-mxfp4", ["--exp-mxfp4"])
    job = image_job(made_plan, "spark", data)
    assert job.activity == "building"
    assert job.log_file == "/var/log/sparkdeploy/image-vllm-node-mxfp4.log"
    assert runner_of(job) == [
        "/usr/local/lib/sparkdeploy/make-vllm-image", "vllm-node-mxfp4", made_plan.label, "3600",
        job.status_file, "script", "/opt/sparkdeploy/spark-vllm-docker", "--",
        "-t", "vllm-node-mxfp4", "--exp-mxfp4", "-j", "16"]


def test_a_pinned_or_registry_image_is_pulled_by_the_runner_itself():
    job = image_job(plan(vllm_image_pins={"vllm-node": DIGEST}), "spark", documented_defaults())
    assert job.activity == "pulling"
    assert runner_of(job)[5:] == ["pull", f"eugr/spark-vllm@{DIGEST}"]


def test_a_bad_timeout_is_an_error():
    with pytest.raises(ConfigError, match="upstream_build_timeout"):
        image_job(plan(), "spark", {**documented_defaults(), "upstream_build_timeout": 0})


def test_render_says_how_the_image_is_obtained():
    assert plan().describe().startswith("vllm-node: pull-and-tag eugr/spark-vllm:latest "
                                        "(build-and-copy.sh -t vllm-node at upstream commit 358bf26e3d7d")
    assert "build locally" in plan("vllm-node-mxfp4", ["--exp-mxfp4"]).describe()
    assert "pinned in vllm_image_pins" in plan(vllm_image_pins={"vllm-node": DIGEST}).describe()


def test_the_checkout_fact_reports_owner_commit_and_origin():
    fact = GitCheckout()
    assert "core.hooksPath=/dev/null" in fact.command("/opt/x")
    assert fact.process([]) is None
    assert fact.process(["owner cluster"]) == {"owner": "cluster", "commit": None, "origin": None}
    assert fact.process(["owner root", f"commit {PINNED}", "origin /srv/x.git"]) == {
        "owner": "root", "commit": PINNED, "origin": "/srv/x.git"}
