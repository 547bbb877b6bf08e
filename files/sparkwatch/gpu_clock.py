"""The firmware-shutdown guard upstream documents: cap the GPU clock (``nvidia-smi -lgc``).

Run at boot by sparkdeploy-gpu-clock.service, since the cap does not survive a reboot. Where
there is no GPU (no nvidia-smi) it says so in the journal and succeeds: nothing to guard.
"""

from __future__ import annotations

import shutil
import subprocess

from sparkwatch import notify

LOWEST_MHZ = 200  # the floor upstream's README pairs with the cap (nvidia-smi -lgc 200,2150)


def apply(mhz: int) -> int:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        notify.journal(notify.WARNING, f"no GPU here (nvidia-smi not found): the GPU clock cap of "
                                       f"{mhz} MHz is skipped")
        return 0
    result = subprocess.run([smi, "-lgc", f"{LOWEST_MHZ},{mhz}"], capture_output=True, text=True,
                            check=False)
    output = (result.stdout + result.stderr).strip().splitlines()
    if result.returncode:
        notify.journal(notify.ERROR, f"nvidia-smi -lgc {LOWEST_MHZ},{mhz} failed (exit "
                                     f"{result.returncode}): {output[-1] if output else ''}")
        return 1
    notify.journal(notify.INFO, f"GPU clock capped at {mhz} MHz (nvidia-smi -lgc {LOWEST_MHZ},{mhz})")
    return 0
