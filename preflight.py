"""The prerequisites checklist on its own, changing nothing. Run: pyinfra inventory.py preflight.py --dry"""

from pyinfra import host, inventory

from sparkdeploy.inventory import host_plan
from tasks.preflight import preflight

preflight(host_plan(inventory, host.name), _sudo=True)
