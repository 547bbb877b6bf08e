"""The local sandbox: a disposable fresh-Spark stand-in on this machine."""

from sparkdeploy.sandbox.state import inventory_hosts

__all__ = ["inventory_hosts"]
