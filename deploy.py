"""The main job: make every Spark match its data. Run: pyinfra inventory.py deploy.py"""

from pyinfra import host, inventory, logger

from sparkdeploy.inventory import host_plan
from tasks.serving import serving_files

plan = host_plan(inventory, host.name)
for warning in plan.warnings:
    logger.warning(warning)

serving_files(plan, _sudo=True)
