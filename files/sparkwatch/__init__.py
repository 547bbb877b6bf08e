"""sparkwatch: keeps a Spark serving, deployed by sparkdeploy to /usr/local/lib/sparkdeploy.

vLLM's /health answers 200 while a stalled scheduler generates nothing, and a restart policy
never fires on a wedge. This package probes each served model as a client would (a one-token
completion), restarts a wedged model's compose project a bounded number of times, watches other
Spark hosts from outside (power-cycling one that answers neither SSH nor HTTP), and reports
each model's state for ``sparkdeploy status``. Standard library only: it runs on the host's own
python3, never in a virtualenv the deploy would have to keep up to date.
"""
