"""The main job: make every Spark match its data. Run: pyinfra inventory.py deploy.py"""

from pyinfra import host, inventory, logger

from sparkdeploy.inventory import host_plan
from tasks.caches import cache_directories
from tasks.cluster_trust import cluster_trust
from tasks.earlyoom import earlyoom_service
from tasks.image import vllm_image
from tasks.link import cx7_link
from tasks.nfs import nfs_model_store
from tasks.page_cache import page_cache_drop
from tasks.preflight import preflight
from tasks.ranks import cluster_ranks
from tasks.relay import relay_service
from tasks.retired_models import retired_models
from tasks.services import serving_services
from tasks.serving import serving_files
from tasks.sshd import sshd_hardening
from tasks.toolkit import container_toolkit
from tasks.watchdog import watchdog_services
from tasks.weights import model_weights

plan = host_plan(inventory, host.name)
for warning in plan.warnings:
    logger.warning(warning)

preflight(plan, _sudo=True)
container_toolkit(_sudo=True)
nfs_model_store(_sudo=True)
cache_directories(_sudo=True)
page_cache_drop(_sudo=True)
earlyoom_service(_sudo=True)
sshd_hardening(_sudo=True)
cx7_link(plan, _sudo=True)
cluster_trust(plan, _sudo=True)
model_weights(plan, _sudo=True)
placed = serving_files(plan, _sudo=True)
image_changes = vllm_image(plan, _sudo=True)
retired_models(plan, _sudo=True)
cluster_ranks(plan, placed, image_changes, _sudo=True)
serving_services(plan, placed, image_changes, _sudo=True)
relay_service(plan, _sudo=True)
watchdog_services(plan, _sudo=True)
