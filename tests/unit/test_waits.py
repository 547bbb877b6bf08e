"""Following a detached build and waiting for services, with a scripted host and clock."""

from __future__ import annotations

from sparkdeploy.data import documented_defaults
from sparkdeploy.image_build import image_job
from sparkdeploy.vllm_service import build_vllm_service
from sparkdeploy.waits import Reporter, follow_image_job, wait_until_up


class ScriptedHost:
    """Answers commands by the first matching substring; each answer list is consumed in order."""

    def __init__(self, answers: dict[str, list[tuple[bool, list[str]]]]):
        self.answers = answers
        self.commands: list[str] = []

    def run(self, command: str) -> tuple[bool, list[str]]:
        self.commands.append(command)
        for key, replies in self.answers.items():
            if key in command:
                return replies.pop(0) if len(replies) > 1 else replies[0]
        return True, []


class Clock:
    def __init__(self):
        self.now = 0.0
        self.info: list[str] = []
        self.errors: list[str] = []

    def reporter(self) -> Reporter:
        return Reporter(info=self.info.append, error=self.errors.append, sleep=self.sleep,
                        clock=lambda: self.now)

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def spec(timeout=600):
    data = {**documented_defaults(), "recipe": "openai-gpt-oss-120b", "upstream_build_timeout": timeout}
    return image_job(build_vllm_service("spark", data).image, "spark", data)


def test_a_build_reports_progress_until_it_succeeds():
    host = ScriptedHost({"if [ -f": [(True, ["running", "Step 1/9"]), (True, ["running", "Step 5/9"]),
                                     (True, ["0", "done"])]})
    clock = Clock()
    assert follow_image_job(host.run, spec(), 30, clock.reporter())
    assert clock.info[0] == "building vllm-node-mxfp4 (0 s): Step 1/9"
    assert clock.info[1] == "building vllm-node-mxfp4 (30 s): Step 5/9"
    assert clock.info[2].startswith("vllm-node-mxfp4 is ready after 1 min 00 s")
    assert not clock.errors


def test_a_failed_build_names_the_log_and_shows_its_tail():
    host = ScriptedHost({"if [ -f": [(True, ["2", "error: no space left"])],
                         "tail -n 15": [(True, ["line a", "error: no space left"])]})
    clock = Clock()
    assert not follow_image_job(host.run, spec(), 30, clock.reporter())
    (error,) = clock.errors
    assert "failed (exit 2); the running image and services are untouched" in error
    assert "log: /var/log/sparkdeploy/image-vllm-node-mxfp4.log" in error
    assert error.endswith("\n    line a\n    error: no space left")


def test_a_timed_out_build_says_so():
    host = ScriptedHost({"if [ -f": [(True, ["124", "stopped"])]})
    clock = Clock()
    assert not follow_image_job(host.run, spec(timeout=5400), 30, clock.reporter())
    assert "timed out after 5400 s" in clock.errors[0]


def test_a_build_that_vanished_without_status_fails():
    host = ScriptedHost({"if [ -f": [(True, ["vanished", ""])]})
    clock = Clock()
    assert not follow_image_job(host.run, spec(), 30, clock.reporter())
    assert "stopped without a result" in clock.errors[0]


def test_following_gives_up_after_the_timeout_and_grace():
    host = ScriptedHost({"if [ -f": [(True, ["running", "still compiling"])]})
    clock = Clock()
    assert not follow_image_job(host.run, spec(timeout=60), 30, clock.reporter())
    assert "gave no result within 60 s" in clock.errors[0]
    assert clock.now <= 60 + 120 + 30


def test_a_service_that_answers_is_up():
    host = ScriptedHost({"curl": [(False, []), (False, []), (True, [])],
                         "docker container inspect": [(True, ["running"])]})
    clock = Clock()
    assert wait_until_up(host.run, "vLLM", "http://127.0.0.1:8000/health", "vllm_node", 600, 10, 40,
                         clock.reporter())
    assert clock.info[-1] == "vLLM is up (http://127.0.0.1:8000/health) after 20 s"


def test_a_service_that_never_answers_fails_with_its_logs():
    host = ScriptedHost({"curl": [(False, [])], "docker container inspect": [(True, ["running"])],
                         "docker logs --tail 40": [(True, ["Loading weights", "CUDA out of memory"])]})
    clock = Clock()
    assert not wait_until_up(host.run, "vLLM", "http://127.0.0.1:8000/health", "vllm_node", 60, 10, 40,
                             clock.reporter())
    (error,) = clock.errors
    assert "did not answer within 60 s" in error
    assert error.endswith("`docker logs vllm_node`:\n    Loading weights\n    CUDA out of memory")


def test_a_service_whose_container_exited_fails_at_once():
    host = ScriptedHost({"curl": [(False, [])], "docker container inspect": [(True, ["exited"])],
                         "docker logs": [(True, ["Traceback"])]})
    clock = Clock()
    assert not wait_until_up(host.run, "the LiteLLM proxy", "http://127.0.0.1:4000/health/liveliness",
                             "litellm", 300, 10, 40, clock.reporter())
    assert clock.now == 0
    assert "its container litellm is exited" in clock.errors[0]
