"""deploy.py's model-weights step and what it builds on (the service user's cache directories),
so tests/sandbox/test_weights.py exercises it alone: pyinfra inventory.py tests/sandbox/weights_deploy.py"""

from pyinfra import host, inventory

from sparkdeploy.inventory import host_plan
from tasks.caches import cache_directories
from tasks.weights import model_weights

plan = host_plan(inventory, host.name)
cache_directories(_sudo=True)
model_weights(plan, _sudo=True)
