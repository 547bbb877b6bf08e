"""The seed's prerequisites checklist, reported per host before anything changes.

"Before starting the stack, verify: Docker Engine and NVIDIA Container Toolkit, the image built,
the weights downloaded, all cache directories" -- read from the host in one round trip and
logged (stderr), one line per check. It changes nothing, so it also runs alone:
``pyinfra inventory.py preflight.py --dry``.
"""

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.server import Command

from sparkdeploy import preflight as checklist
from sparkdeploy.data import service_home
from sparkdeploy.plan import HostPlan


@deploy("Preflight")
def preflight(plan: HostPlan) -> None:
    data = host.data.dict()
    home = service_home(data)
    recipe = plan.vllm.recipe if plan.vllm else None
    store = (data["model_store_nfs_dir"] if data["model_store"] == "nfs"
             else f"{home}/.cache/huggingface/hub")
    subject = checklist.Subject(
        home=home,
        cache_dirs=[f"{home}/{path}" for path in data["vllm_cache_mounts"]],
        image=recipe.container if recipe else None,
        weights_dir=checklist.weights_dir(recipe.model if recipe else None, store),
        min_free_gib=data["preflight_min_free_gib"],
    )
    output = host.get_fact(Command, command=checklist.probe_script(subject)) or ""
    checks = checklist.evaluate(subject, checklist.parse_probe(output.splitlines()))
    passed = sum(check.ok for check in checks)
    logger.info(f"{host.print_prefix}preflight: {passed} of {len(checks)} prerequisites met")
    for check in checks:
        report = logger.info if check.ok else logger.warning
        report(f"{host.print_prefix}preflight: [{'ok' if check.ok else 'MISSING'}] "
               f"{check.name}: {check.detail}")
