"""Stop, start or show vLLM and the proxy on each host.

Run: pyinfra inventory.py stack.py --data stack_action=status|stop|start [--limit HOST]
"""

from pyinfra import host, inventory

from sparkdeploy.inventory import host_plan
from tasks.stack import serving_stack

serving_stack(host_plan(inventory, host.name), host.data.stack_action, _sudo=True)
