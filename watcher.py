"""The outside watcher alone, for an always-on box that is no Spark (a NAS, a small server):
sparkwatch and its timer, nothing else of the Spark deploy. A Spark that watches another gets
it from deploy.py.

Run: pyinfra inventory.py watcher.py --limit nas   (drift: sparkdeploy drift --deploy watcher.py)
"""

from pyinfra import host, inventory

from sparkdeploy.inventory import host_plan
from tasks.watchdog import watchdog_services

watchdog_services(host_plan(inventory, host.name), _sudo=True)
