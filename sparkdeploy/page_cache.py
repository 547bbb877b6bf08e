"""The periodic page-cache drop: a cron schedule checked before it reaches ``/etc/cron.d``.

On GB10 unified memory the page cache shares the GPU's pool and vLLM sizes itself from
cudaMemGetInfo, which ignores reclaimable cache ("OOM after hours of uptime: page cache grows,
steals from GPU memory pool"), so the seed drops it every 4 h and right before vLLM starts.
"""

from __future__ import annotations

import re
from typing import Any

from sparkdeploy.errors import ConfigError

# cron(8) ignores files in /etc/cron.d whose name contains a dot.
CRON_PATH = "/etc/cron.d/drop-caches"
DROP_COMMAND = "sync && echo 3 > /proc/sys/vm/drop_caches"
_SPECIAL = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_RANGE = r"(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?"
_FIELD = re.compile(rf"^{_RANGE}(,{_RANGE})*\Z")


def cron_schedule(value: Any, source: str) -> str | None:
    """The five time fields (or an @keyword); "" turns the periodic drop off (None is returned)."""
    if value == "":
        return None
    allowed = "five cron fields such as '0 */4 * * *', an @keyword like '@hourly', or '' (off)"
    if not isinstance(value, str):
        raise ConfigError(source, "page_cache_drop_schedule", f"{value!r} is not a schedule",
                          allowed=allowed)
    fields = value.split()
    if len(fields) == 1 and fields[0] in _SPECIAL:
        return fields[0]
    if len(fields) != 5 or not all(_FIELD.match(field) for field in fields):
        raise ConfigError(source, "page_cache_drop_schedule", f"{value!r} is not a cron schedule",
                          allowed=allowed)
    return " ".join(fields)
