"""The preflight probe, run on the deployed host, finds what the host tasks put there."""

from __future__ import annotations

from sparkdeploy import preflight
from sparkdeploy.data import service_home


def test_preflight_sees_docker_the_toolkit_its_runtime_and_the_caches(host, host_data):
    home = service_home(host_data)
    subject = preflight.Subject(home=home,
                                cache_dirs=[f"{home}/{path}" for path in host_data["vllm_cache_mounts"]],
                                image=None, weights_dir=None, min_free_gib=0)
    result = host.run(preflight.probe_script(subject))
    assert result.rc == 0
    checks = {check.name: check for check in
              preflight.evaluate(subject, preflight.parse_probe(result.stdout.splitlines()))}
    for name in ("Docker Engine", "NVIDIA Container Toolkit", "nvidia runtime registered with Docker",
                 "cache directories"):
        assert checks[name].ok, f"{name}: {checks[name].detail}"
